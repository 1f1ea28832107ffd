import { type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX, grid } from './grid.js';
import { ROW_WG, WORKGROUP_REDUCE } from './workgroup_reduce.js';

/**
 * Softmax over the last axis, one workgroup per row (js/softmax.ts): the
 * row's maximum is subtracted before exp so that nothing overflows, and a
 * row where every value is −∞ (fully masked) becomes zeros, not NaN.
 */

const SOFTMAX: KernelSource = {
  name: 'softmax',
  bindings: ['read', 'rw'],
  code: /* wgsl */ `
struct Params { rows: u32, cols: u32, xOff: u32, outOff: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
${FLAT_INDEX}
${WORKGROUP_REDUCE}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = flatGroup(wid, nwg);
  if (r >= p.rows) { return; } // the whole workgroup leaves together
  let xo = p.xOff + r * p.cols;
  let oo = p.outOff + r * p.cols;
  // Start below every finite value: a row that stays there held only −∞ (fully masked).
  let LOWEST = -0x1.fffffep+127f; // the most negative f32
  var m = LOWEST;
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { m = max(m, x[xo + j]); }
  m = reduceMax(m, lid);
  if (m == LOWEST) {
    for (var j = lid; j < p.cols; j += ${ROW_WG}u) { out[oo + j] = 0.0; }
    return;
  }
  var s = 0.0;
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { s += exp(x[xo + j] - m); }
  let inv = 1.0 / reduceSum(s, lid);
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { out[oo + j] = exp(x[xo + j] - m) * inv; }
}`,
};

export function softmaxForward(ctx: GpuContext, x: GpuSpan, out: GpuSpan, rows: number, cols: number): void {
  ctx.dispatch(SOFTMAX, [x.buffer, out.buffer], [u32(rows), u32(cols), u32(x.offset), u32(out.offset)], grid(ctx, rows, 1));
}

const SOFTMAX_BACKWARD: KernelSource = {
  name: 'softmaxBackward',
  bindings: ['read', 'read', 'rw'],
  code: /* wgsl */ `
struct Params { rows: u32, cols: u32, yOff: u32, dyOff: u32, dxOff: u32 }
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${FLAT_INDEX}
${WORKGROUP_REDUCE}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = flatGroup(wid, nwg);
  if (r >= p.rows) { return; }
  let o = r * p.cols;
  var dot = 0.0;
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) { dot += dy[p.dyOff + o + j] * y[p.yOff + o + j]; }
  dot = reduceSum(dot, lid);
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) {
    let i = p.dxOff + o + j;
    dx[i] = dx[i] + y[p.yOff + o + j] * (dy[p.dyOff + o + j] - dot);
  }
}`,
};

/** dx += y ⊙ (dy − Σ dy⊙y) per row (always accumulates, as js does). */
export function softmaxBackward(ctx: GpuContext, y: GpuSpan, dy: GpuSpan, dx: GpuSpan, rows: number, cols: number): void {
  ctx.dispatch(SOFTMAX_BACKWARD, [y.buffer, dy.buffer, dx.buffer], [u32(rows), u32(cols), u32(y.offset), u32(dy.offset), u32(dx.offset)], grid(ctx, rows, 1));
}
