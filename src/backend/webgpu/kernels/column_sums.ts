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
 *
 * Over many rows the rows are cut into chunks too (elementwise.ts's
 * `columnChunks`): workgroup y walks the rows `rowChunk(wid.y)` gives, and a
 * second pass adds the chunks' sums. A kernel using COLUMN_REDUCE has
 * `rows` and `chunkRows` in its params (chunkRows = rows: one chunk).
 */

export const COL_X = 16;
export const COL_Y = 16;

/**
 * `colReduce(v, lid)`: the sum of v over the COL_Y lanes of column lid.x,
 * valid in lane 0 (every invocation must call it: it has barriers).
 * `rowChunk(y)`: the first row of chunk y and the row after its last.
 */
export const COLUMN_REDUCE = /* wgsl */ `
var<workgroup> colPart: array<f32, ${COL_X * COL_Y}>;

fn rowChunk(y: u32) -> vec2<u32> {
  let r0 = y * p.chunkRows;
  return vec2<u32>(r0, min(p.rows, r0 + p.chunkRows));
}

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
