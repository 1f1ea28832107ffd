import { type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX } from './grid.js';
import { variants } from './variants.js';
import { laneReduce, ROW_WG, rowGroups, rowLanes } from './workgroup_reduce.js';

/**
 * Softmax over the last axis, rows of `rowLanes(cols)` invocations (js/softmax.ts): the
 * row's maximum is subtracted before exp so that nothing overflows, and a
 * row where every value is −∞ (fully masked) becomes zeros, not NaN.
 */

const softmax = variants(String, (lanes: number): KernelSource => ({
  name: `softmax_l${lanes}`,
  bindings: ['read', 'rw'],
  code: /* wgsl */ `
struct Params { rows: u32, cols: u32, xOff: u32, outOff: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
${FLAT_INDEX}
${laneReduce(lanes)}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = laneRow(wid, nwg, lid);
  let width = select(0u, p.cols, r < p.rows); // a row past the last reads nothing, but reduces with its workgroup
  let xo = p.xOff + r * p.cols;
  let oo = p.outOff + r * p.cols;
  // Start below every finite value: a row that stays there held only −∞ (fully masked).
  let LOWEST = -0x1.fffffep+127f; // the most negative f32
  var m = LOWEST;
  for (var j = lid % LANES; j < width; j += LANES) { m = max(m, x[xo + j]); }
  m = laneMax(m, lid);
  var s = 0.0;
  for (var j = lid % LANES; j < width; j += LANES) { s += exp(x[xo + j] - m); }
  // A fully masked row: exp(−∞ − LOWEST) = 0 everywhere, and 0, not 0/0, is written.
  let inv = select(1.0 / laneSum(s, lid), 0.0, m == LOWEST);
  for (var j = lid % LANES; j < width; j += LANES) { out[oo + j] = exp(x[xo + j] - m) * inv; }
}`,
}));

export function softmaxForward(ctx: GpuContext, x: GpuSpan, out: GpuSpan, rows: number, cols: number): void {
  const lanes = rowLanes(cols);
  ctx.dispatch(softmax(lanes), [x.buffer, out.buffer], [u32(rows), u32(cols), u32(x.offset), u32(out.offset)], rowGroups(ctx, rows, lanes));
}

const softmaxBackwardRows = variants(String, (lanes: number): KernelSource => ({
  name: `softmaxBackward_l${lanes}`,
  bindings: ['read', 'read', 'rw'],
  code: /* wgsl */ `
struct Params { rows: u32, cols: u32, yOff: u32, dyOff: u32, dxOff: u32 }
@group(0) @binding(0) var<storage, read> y: array<f32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dx: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${FLAT_INDEX}
${laneReduce(lanes)}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = laneRow(wid, nwg, lid);
  let width = select(0u, p.cols, r < p.rows);
  let o = r * p.cols;
  var dot = 0.0;
  for (var j = lid % LANES; j < width; j += LANES) { dot += dy[p.dyOff + o + j] * y[p.yOff + o + j]; }
  dot = laneSum(dot, lid);
  for (var j = lid % LANES; j < width; j += LANES) {
    let i = p.dxOff + o + j;
    dx[i] = dx[i] + y[p.yOff + o + j] * (dy[p.dyOff + o + j] - dot);
  }
}`,
}));

/** dx += y ⊙ (dy − Σ dy⊙y) per row (always accumulates, as js does). */
export function softmaxBackward(ctx: GpuContext, y: GpuSpan, dy: GpuSpan, dx: GpuSpan, rows: number, cols: number): void {
  const lanes = rowLanes(cols);
  ctx.dispatch(softmaxBackwardRows(lanes), [y.buffer, dy.buffer, dx.buffer], [u32(rows), u32(cols), u32(y.offset), u32(dy.offset), u32(dx.offset)], rowGroups(ctx, rows, lanes));
}
