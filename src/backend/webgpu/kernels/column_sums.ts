/**
 * WGSL for sums down the columns of a row-major matrix (a bias gradient, a
 * LayerNorm's dWeight and dBias): the reduction over the rows of a batch.
 *
 * One invocation per column walking every row leaves a GPU nearly idle (384
 * invocations, each 4 096 dependent loads, for a width-384 model's bias).
 * Instead a workgroup owns COL_X neighbouring columns and has COL_Y lanes per
 * column: lane y adds rows y, y + COL_Y, y + 2·COL_Y… (neighbouring
 * invocations read neighbouring columns of a row: coalesced), then the lanes'
 * partial sums meet in workgroup memory and lane 0 adds them in lane order.
 * The order of the additions is fixed, so the result does not change from
 * run to run (WGSL has no float atomics, and atomics would make it vary).
 */

export const COL_X = 16;
export const COL_Y = 16;

/** `colReduce(v, lid)`: the sum of v over the COL_Y lanes of column lid.x, valid in lane 0 (every invocation must call it: it has barriers). */
export const COLUMN_REDUCE = /* wgsl */ `
var<workgroup> colPart: array<f32, ${COL_X * COL_Y}>;

fn colReduce(v: f32, lid: vec3<u32>) -> f32 {
  colPart[lid.y * ${COL_X}u + lid.x] = v;
  workgroupBarrier();
  var s = 0.0;
  if (lid.y == 0u) {
    for (var y = 0u; y < ${COL_Y}u; y++) { s += colPart[y * ${COL_X}u + lid.x]; }
  }
  workgroupBarrier(); // colPart is reused by the next call
  return s;
}
`;
