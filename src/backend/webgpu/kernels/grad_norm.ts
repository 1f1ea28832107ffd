import { f32, type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX, grid, WG } from './grid.js';
import { ROW_WG, WORKGROUP_REDUCE } from './workgroup_reduce.js';

/**
 * Gradient clipping without leaving the device (src/optim/clip.ts's rule):
 * Σg² of each gradient tensor by a two-pass reduction (many workgroups write
 * partial sums, one workgroup adds them, into or onto a slot of a device
 * buffer), then one invocation turns the total into [norm, factor] with
 * factor = maxNorm/(norm + 1e-6) when norm > maxNorm, else 1, and every
 * gradient is multiplied by the factor read from the device. Only the norm,
 * if someone logs it, ever crosses to the host.
 */

/** Elements each invocation of the first pass sums. */
const PER_INVOCATION = 16;
const PER_GROUP = ROW_WG * PER_INVOCATION;

const CODE = /* wgsl */ `
struct Params { n: u32, off: u32, outOff: u32, accumulate: u32, maxNorm: f32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> partial: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${FLAT_INDEX}
${WORKGROUP_REDUCE}

@compute @workgroup_size(${ROW_WG})
fn partials(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let g = flatGroup(wid, nwg);
  let start = g * ${PER_GROUP}u;
  var s = 0.0;
  for (var k = 0u; k < ${PER_INVOCATION}u; k++) {
    let i = start + k * ${ROW_WG}u + lid; // neighbouring invocations read neighbouring elements
    if (i < p.n) { let v = x[p.off + i]; s += v * v; }
  }
  s = reduceSum(s, lid);
  if (lid == 0u) { partial[g] = s; }
}

// One workgroup: p.n partial sums into out[outOff].
@compute @workgroup_size(${ROW_WG})
fn total(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  for (var i = lid; i < p.n; i += ${ROW_WG}u) { s += partial[i]; }
  s = reduceSum(s, lid);
  if (lid == 0u) {
    if (p.accumulate != 0u) { s += out[p.outOff]; }
    out[p.outOff] = s;
  }
}

// out[outOff] = Σg² in; out[outOff + 1] = norm; out[outOff + 2] = the clip factor.
@compute @workgroup_size(1)
fn clip() {
  let norm = sqrt(out[p.outOff]);
  out[p.outOff + 1u] = norm;
  out[p.outOff + 2u] = select(1.0, p.maxNorm / (norm + 1e-6), p.maxNorm > 0.0 && norm > p.maxNorm);
}

@compute @workgroup_size(${WG})
fn scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i < p.n) { x[p.off + i] = x[p.off + i] * out[p.outOff]; }
}`;

const BINDINGS = ['rw', 'rw', 'rw'] as const;
const PARTIALS: KernelSource = { name: 'sumSquares', entry: 'partials', code: CODE, bindings: BINDINGS };
const TOTAL: KernelSource = { name: 'sumSquaresTotal', entry: 'total', code: CODE, bindings: BINDINGS };
const CLIP: KernelSource = { name: 'clipFactor', entry: 'clip', code: CODE, bindings: BINDINGS };
const SCALE: KernelSource = { name: 'scaleByDevice', entry: 'scale', code: CODE, bindings: BINDINGS };

/** out[out.offset] = Σ x² (accumulate: += it), computed and kept on the device. */
export function sumSquares(ctx: GpuContext, x: GpuSpan, out: GpuSpan, accumulate: boolean): void {
  const groups = Math.max(1, Math.ceil(x.length / PER_GROUP));
  const partial = ctx.buffer(groups * 4);
  const params = [u32(x.length), u32(x.offset), u32(out.offset), u32(accumulate ? 1 : 0), f32(0)];
  ctx.dispatch(PARTIALS, [x.buffer, partial, null], params, grid(ctx, groups, 1));
  ctx.dispatch(TOTAL, [null, partial, out.buffer], [u32(groups), ...params.slice(1)], [1]);
  ctx.release(partial);
}

/**
 * From Σg² at stats[stats.offset] (3 elements from there): stats[+1] = the
 * norm, stats[+2] = the factor that brings it down to maxNorm (1 when it is
 * already at most maxNorm, or maxNorm ≤ 0).
 */
export function clipFactor(ctx: GpuContext, stats: GpuSpan, maxNorm: number): void {
  ctx.dispatch(CLIP, [null, null, stats.buffer], [u32(0), u32(0), u32(stats.offset), u32(0), f32(maxNorm)], [1]);
}

/** x *= factor[factor.offset], the factor read on the device (clipFactor's stats[+2]). */
export function scaleByDevice(ctx: GpuContext, x: GpuSpan, factor: GpuSpan): void {
  ctx.dispatch(SCALE, [x.buffer, null, factor.buffer], [u32(x.length), u32(x.offset), u32(factor.offset), u32(0), f32(0)], grid(ctx, x.length));
}
