import { type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX, grid } from './grid.js';
import { ROW_WG } from './workgroup_reduce.js';

/**
 * The index of each row's largest value, as js/argmax.ts: greedy decoding
 * chooses its token on the device, so a decode step reads back 4 bytes per
 * sequence instead of a whole row of logits. One workgroup per row: each
 * invocation scans the columns j ≡ lid (mod 256) in increasing order, keeping
 * the first of equal values; a tree in workgroup memory then merges (value,
 * index) pairs, the lower index winning ties, so the result is the first
 * maximum of the row as in js. The index is written as an f32 (exact below
 * 2²⁴, far past any vocabulary).
 */

const ARGMAX: KernelSource = {
  name: 'argmaxRows',
  bindings: ['read', 'rw'],
  code: /* wgsl */ `
struct Params { rows: u32, cols: u32, xOff: u32, outOff: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
${FLAT_INDEX}
var<workgroup> vals: array<f32, ${ROW_WG}>;
var<workgroup> idxs: array<u32, ${ROW_WG}>;

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = flatGroup(wid, nwg);
  if (r >= p.rows) { return; } // the whole workgroup leaves together
  let xo = p.xOff + r * p.cols;
  var top = -0x1.fffffep+127f;
  var best = 0xffffffffu; // no column seen (a lane past the row's end)
  for (var j = lid; j < p.cols; j += ${ROW_WG}u) {
    let v = x[xo + j];
    if (best == 0xffffffffu || v > top) { top = v; best = j; }
  }
  vals[lid] = top;
  idxs[lid] = best;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      let v = vals[lid + s];
      let i = idxs[lid + s];
      if (i != 0xffffffffu && (idxs[lid] == 0xffffffffu || v > vals[lid] || (v == vals[lid] && i < idxs[lid]))) {
        vals[lid] = v;
        idxs[lid] = i;
      }
    }
    workgroupBarrier();
  }
  if (lid == 0u) { out[p.outOff + r] = f32(idxs[0]); }
}`,
};

/** out[r] = argmax of row r of x [rows, cols], as a float. */
export function argmaxRows(ctx: GpuContext, x: GpuSpan, rows: number, cols: number, out: GpuSpan): void {
  ctx.dispatch(ARGMAX, [x.buffer, out.buffer], [u32(rows), u32(cols), u32(x.offset), u32(out.offset)], grid(ctx, rows, 1));
}
