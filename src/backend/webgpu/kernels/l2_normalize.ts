import { L2_EPS } from '../../js/l2_normalize.js';
import { f32, type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX } from './grid.js';
import { variants } from './variants.js';
import { laneReduce, ROW_WG, rowGroups, rowLanes } from './workgroup_reduce.js';

/**
 * Rows scaled to unit length (js/l2_normalize.ts), rows of `rowLanes(D)` invocations:
 * forward reduces Σx² and divides; backward reduces y·dy and adds
 * (dy − y·(y·dy)) / norm into dx. The sums run as a tree in f32 where js
 * adds in order in doubles: they agree to float32 rounding, not bit for bit.
 */

const code = (lanes: number) => /* wgsl */ `
struct Params { rows: u32, D: u32, eps: f32, aOff: u32, bOff: u32, cOff: u32, nOff: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;          // x (forward) or y (backward)
@group(0) @binding(1) var<storage, read> b: array<f32>;          // unused (forward) or dy (backward)
@group(0) @binding(2) var<storage, read_write> c: array<f32>;    // y (forward) or dx (backward)
@group(0) @binding(3) var<storage, read_write> norms: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
${FLAT_INDEX}
${laneReduce(lanes)}

@compute @workgroup_size(${ROW_WG})
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = laneRow(wid, nwg, lid);
  let inside = r < p.rows;
  let width = select(0u, p.D, inside); // a row past the last reads nothing, but reduces with its workgroup
  let o = r * p.D;
  var sq = 0.0;
  for (var i = lid % LANES; i < width; i += LANES) { let v = a[p.aOff + o + i]; sq += v * v; }
  let n = max(sqrt(laneSum(sq, lid)), p.eps);
  if (inside && lid % LANES == 0u) { norms[p.nOff + r] = n; }
  for (var i = lid % LANES; i < width; i += LANES) { c[p.cOff + o + i] = a[p.aOff + o + i] / n; }
}

@compute @workgroup_size(${ROW_WG})
fn backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = laneRow(wid, nwg, lid);
  let width = select(0u, p.D, r < p.rows);
  let o = r * p.D;
  var dot = 0.0;
  for (var i = lid % LANES; i < width; i += LANES) { dot += a[p.aOff + o + i] * b[p.bOff + o + i]; }
  let yDy = laneSum(dot, lid);
  let inv = 1.0 / norms[p.nOff + r];
  for (var i = lid % LANES; i < width; i += LANES) {
    let j = p.cOff + o + i;
    c[j] = c[j] + (b[p.bOff + o + i] - a[p.aOff + o + i] * yDy) * inv;
  }
}`;

const BINDINGS = ['read', 'read', 'rw', 'rw'] as const;
const forward = variants(String, (lanes: number): KernelSource => ({ name: `l2NormalizeForward_l${lanes}`, entry: 'forward', code: code(lanes), bindings: BINDINGS }));
const backward = variants(String, (lanes: number): KernelSource => ({ name: `l2NormalizeBackward_l${lanes}`, entry: 'backward', code: code(lanes), bindings: BINDINGS }));

/** y = x / max(‖x‖, 1e-12) per row of D values; norms receives the divisors. */
export function l2NormalizeForward(ctx: GpuContext, x: GpuSpan, y: GpuSpan, norms: GpuSpan, rows: number, D: number): void {
  const lanes = rowLanes(D);
  ctx.dispatch(forward(lanes), [x.buffer, null, y.buffer, norms.buffer], [u32(rows), u32(D), f32(L2_EPS), u32(x.offset), u32(0), u32(y.offset), u32(norms.offset)], rowGroups(ctx, rows, lanes));
}

/** dx += (dy − y·(y·dy)) / norm per row. */
export function l2NormalizeBackward(ctx: GpuContext, y: GpuSpan, norms: GpuSpan, dy: GpuSpan, dx: GpuSpan, rows: number, D: number): void {
  // norms is only read here; it sits in a read-write slot because forward writes it.
  const lanes = rowLanes(D);
  ctx.dispatch(backward(lanes), [y.buffer, dy.buffer, dx.buffer, norms.buffer], [u32(rows), u32(D), f32(0), u32(y.offset), u32(dy.offset), u32(dx.offset), u32(norms.offset)], rowGroups(ctx, rows, lanes));
}
