import type { GpuContext, GpuSpan, KernelSource } from '../device.js';
import { u32 } from '../device.js';
import { FLAT_INDEX, grid, WG } from './grid.js';

/**
 * Max over positions (js/max_pool.ts), one invocation per (b, c): forward
 * walks the T positions in order (the first wins ties, as in js) and keeps
 * the winner as a float; backward adds dy into the winner's slot. Each
 * (b, c) owns a distinct slot of dx, so the backward needs no atomics.
 */

const CODE = /* wgsl */ `
struct Params { B: u32, T: u32, C: u32, xOff: u32, outOff: u32, winOff: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;       // x (forward) or dy (backward)
@group(0) @binding(1) var<storage, read_write> out: array<f32>; // out (forward) or dx (backward)
@group(0) @binding(2) var<storage, read_write> winner: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${FLAT_INDEX}
@compute @workgroup_size(${WG})
fn forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.B * p.C) { return; }
  let b = i / p.C;
  let c = i % p.C;
  var best = 0u;
  var value = x[p.xOff + b * p.T * p.C + c];
  for (var t = 1u; t < p.T; t++) {
    let v = x[p.xOff + (b * p.T + t) * p.C + c];
    if (v > value) { value = v; best = t; }
  }
  out[p.outOff + i] = value;
  winner[p.winOff + i] = f32(best);
}

@compute @workgroup_size(${WG})
fn backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.B * p.C) { return; }
  let b = i / p.C;
  let c = i % p.C;
  let j = p.outOff + (b * p.T + u32(winner[p.winOff + i])) * p.C + c;
  out[j] = out[j] + x[p.xOff + i];
}`;

const BINDINGS = ['read', 'rw', 'rw'] as const;
const FORWARD: KernelSource = { name: 'maxPoolForward', entry: 'forward', code: CODE, bindings: BINDINGS };
const BACKWARD: KernelSource = { name: 'maxPoolBackward', entry: 'backward', code: CODE, bindings: BINDINGS };

/** out[b, c] = max over t of x[b, t, c]; winner[b, c] = that t, as a float. */
export function maxPoolForward(ctx: GpuContext, x: GpuSpan, out: GpuSpan, winner: GpuSpan, B: number, T: number, C: number): void {
  ctx.dispatch(FORWARD, [x.buffer, out.buffer, winner.buffer], [u32(B), u32(T), u32(C), u32(x.offset), u32(out.offset), u32(winner.offset)], grid(ctx, B * C));
}

/** dx[b, winner[b, c], c] += dy[b, c]. */
export function maxPoolBackward(ctx: GpuContext, dy: GpuSpan, winner: GpuSpan, dx: GpuSpan, B: number, T: number, C: number): void {
  // winner is only read here; it sits in a read-write slot because forward writes it.
  ctx.dispatch(BACKWARD, [dy.buffer, dx.buffer, winner.buffer], [u32(B), u32(T), u32(C), u32(dy.offset), u32(dx.offset), u32(winner.offset)], grid(ctx, B * C));
}
