import { f32, type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX, grid, WG } from './grid.js';

/**
 * Inverted dropout with js/dropout.ts's counter-based mask: element i is
 * dropped when murmur3's finaliser of (seed ^ i·0x9e3779b9) falls below
 * p·2³². u32 multiplication in WGSL wraps modulo 2³² as Math.imul does, so
 * every element's decision is bit-identical to the js backend's from the
 * same seed. Attention's dropout reuses DROP_BITS.
 */

/** WGSL: js/dropout.ts's dropBits. */
export const DROP_BITS = /* wgsl */ `
fn dropBits(seed: u32, i: u32) -> u32 {
  var h = seed ^ (i * 0x9e3779b9u);
  h = (h ^ (h >> 16u)) * 0x85ebca6bu;
  h = (h ^ (h >> 13u)) * 0xc2b2ae35u;
  return h ^ (h >> 16u);
}`;

/** Elements whose hash is below this are dropped (js/dropout.ts's dropThreshold). */
export function dropThreshold(p: number): number {
  return Math.min(2 ** 32 - 1, Math.floor(p * 2 ** 32));
}

const CODE = /* wgsl */ `
struct Params { n: u32, seed: u32, threshold: u32, keep: f32, aOff: u32, maskOff: u32, outOff: u32, accumulate: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;      // x (forward) or dOut (backward)
@group(0) @binding(1) var<storage, read_write> mask: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>; // out (forward) or dx (backward)
@group(0) @binding(3) var<uniform> p: Params;
${FLAT_INDEX}
${DROP_BITS}
@compute @workgroup_size(${WG})
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n) { return; }
  let m = select(p.keep, 0.0, dropBits(p.seed, i) < p.threshold);
  mask[p.maskOff + i] = m;
  out[p.outOff + i] = a[p.aOff + i] * m;
}

@compute @workgroup_size(${WG})
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n) { return; }
  var d = a[p.aOff + i] * mask[p.maskOff + i];
  if (p.accumulate != 0u) { d = out[p.outOff + i] + d; }
  out[p.outOff + i] = d;
}`;

const BINDINGS = ['read', 'rw', 'rw'] as const;
const FORWARD: KernelSource = { name: 'dropoutForward', entry: 'forward', code: CODE, bindings: BINDINGS };
const BACKWARD: KernelSource = { name: 'dropoutBackward', entry: 'backward', code: CODE, bindings: BINDINGS };

/** mask = 0 with probability p, else 1/(1−p) (the js mask for this seed); out = x·mask. */
export function dropoutForward(ctx: GpuContext, x: GpuSpan, out: GpuSpan, mask: GpuSpan, p: number, seed: number): void {
  ctx.dispatch(
    FORWARD, [x.buffer, mask.buffer, out.buffer],
    [u32(x.length), u32(seed >>> 0), u32(dropThreshold(p)), f32(1 / (1 - p)), u32(x.offset), u32(mask.offset), u32(out.offset), u32(0)],
    grid(ctx, x.length),
  );
}

/** dx (+)= dOut·mask. */
export function dropoutBackward(ctx: GpuContext, dOut: GpuSpan, mask: GpuSpan, dx: GpuSpan, accumulate: boolean): void {
  ctx.dispatch(
    BACKWARD, [dOut.buffer, mask.buffer, dx.buffer],
    [u32(dOut.length), u32(0), u32(0), f32(0), u32(dOut.offset), u32(mask.offset), u32(dx.offset), u32(accumulate ? 1 : 0)],
    grid(ctx, dOut.length),
  );
}
