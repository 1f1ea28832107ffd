import { f32, type GpuContext, type GpuSpan, type KernelSource, span, u32 } from '../device.js';
import { columnChunks, columnSum } from './elementwise.js';
import { FLAT_INDEX } from './grid.js';
import { variants } from './variants.js';
import { laneReduce, ROW_WG, rowGroups, rowLanes } from './workgroup_reduce.js';
import { COL_X, COL_Y, COLUMN_REDUCE } from './column_sums.js';
import { deferInput } from './input_fold.js';

/**
 * LayerNorm forward and backward with js/layernorm.ts's formulas: the mean,
 * then the biased variance from a second pass over (x − mean) (not
 * E[x²] − mean², which cancels badly), s = 1/√(var + eps); mean and s are
 * saved per row. Backward, with n = (x − mean)·s and g = dy·w:
 * dx = s·(g − mean(g) − n·mean(g·n)). Each row has `rowLanes(cols)` invocations
 * (workgroup_reduce.ts), several rows to a workgroup. dWeight and dBias
 * sum over rows, fused in one second kernel: a workgroup per block of columns
 * (column_sums.ts), deterministic (no float atomics in WGSL); over many rows,
 * a workgroup per block of columns and chunk of rows, whose sums a column
 * sum (elementwise.ts) then adds up.
 */

const LAYOUT = /* wgsl */ `
struct Params { rows: u32, cols: u32, eps: f32, hasWeight: u32, hasBias: u32, accumulate: u32,
  xOff: u32, wOff: u32, bOff: u32, outOff: u32, statOff: u32, dbOff: u32, dbInWeight: u32, chunkRows: u32, chunks: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
fn w(j: u32) -> f32 { if (p.hasWeight != 0u) { return weight[p.wOff + j]; } return 1.0; }
${FLAT_INDEX}
`;

const forward = variants(String, (lanes: number): KernelSource => ({
  name: `layerNormForward_l${lanes}`,
  bindings: ['read', 'read', 'read', 'rw', 'rw', 'rw'],
  code: /* wgsl */ `
${LAYOUT.replace('@binding(2) var<uniform>', '@binding(6) var<uniform>')}
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
${laneReduce(lanes)}
@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = laneRow(wid, nwg, lid);
  let inside = r < p.rows;
  let n = select(0u, p.cols, inside); // a row past the last reads nothing, but reduces with its workgroup
  let xo = p.xOff + r * p.cols;
  var s = 0.0;
  for (var j = lid % LANES; j < n; j += LANES) { s += x[xo + j]; }
  let m = laneSum(s, lid) / f32(p.cols);
  var v = 0.0;
  for (var j = lid % LANES; j < n; j += LANES) { let d = x[xo + j] - m; v += d * d; }
  let rs = 1.0 / sqrt(laneSum(v, lid) / f32(p.cols) + p.eps);
  if (inside && lid % LANES == 0u) { mean[p.statOff + r] = m; rstd[p.statOff + r] = rs; }
  for (var j = lid % LANES; j < n; j += LANES) {
    var y = (x[xo + j] - m) * rs * w(j);
    if (p.hasBias != 0u) { y += bias[p.bOff + j]; }
    out[p.outOff + r * p.cols + j] = y;
  }
}`,
}));

/** out = (x − mean)·rstd·weight + bias per row of `cols`; mean and rstd (at element `statOffset` of their spans) receive each row's statistics. */
export function layerNormForward(
  ctx: GpuContext, x: GpuSpan, weight: GpuSpan | null, bias: GpuSpan | null, out: GpuSpan,
  mean: GpuSpan, rstd: GpuSpan, rows: number, cols: number, eps: number,
): void {
  if (mean.offset !== rstd.offset) throw new Error('webgpu layerNormForward: mean and rstd must start at the same element of their buffers');
  const lanes = rowLanes(cols);
  const run = () => ctx.dispatch(
    forward(lanes),
    [x.buffer, weight?.buffer, bias?.buffer, out.buffer, mean.buffer, rstd.buffer],
    [
      u32(rows), u32(cols), f32(eps), u32(weight ? 1 : 0), u32(bias ? 1 : 0), u32(0),
      u32(x.offset), u32(weight?.offset ?? 0), u32(bias?.offset ?? 0), u32(out.offset), u32(mean.offset), u32(0), u32(0), u32(rows), u32(0),
    ],
    rowGroups(ctx, rows, lanes),
  );
  // A decode step's few rows: left for the product that reads them to fold in (input_fold.ts).
  if (!deferInput(ctx, { kind: 'layer', input: x, weight, bias, eps, rows, cols, out }, [mean, rstd], run)) run();
}

/** Backward: bindings 0 x, 1 weight, 2 mean, 3 rstd, 4 dy, 5 dx, 6 dWeight, 7 dBias; entry `rows` (dx, rows of `lanes`) and `cols` (dWeight, dBias). */
const backwardCode = (lanes: number) => /* wgsl */ `
${LAYOUT.replace('@binding(2) var<uniform>', '@binding(8) var<uniform>')}
@group(0) @binding(2) var<storage, read> mean: array<f32>;
@group(0) @binding(3) var<storage, read> rstd: array<f32>;
@group(0) @binding(4) var<storage, read> dy: array<f32>;
@group(0) @binding(5) var<storage, read_write> dx: array<f32>;
@group(0) @binding(6) var<storage, read_write> dWeight: array<f32>;
@group(0) @binding(7) var<storage, read_write> dBias: array<f32>;
${laneReduce(lanes)}
// p.outOff is dy's and dx's offset pair: dy at p.outOff, dx at p.bOff (the bias slot is free in backward).
@compute @workgroup_size(${ROW_WG})
fn rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = laneRow(wid, nwg, lid);
  let inside = r < p.rows;
  let width = select(0u, p.cols, inside); // a row past the last reads nothing, but reduces with its workgroup
  let o = r * p.cols;
  let m = select(0.0, mean[p.statOff + r], inside);
  let s = select(0.0, rstd[p.statOff + r], inside);
  var gs = 0.0;
  var gns = 0.0;
  for (var j = lid % LANES; j < width; j += LANES) {
    let n = (x[p.xOff + o + j] - m) * s;
    let g = dy[p.outOff + o + j] * w(j);
    gs += g;
    gns += g * n;
  }
  let gMean = laneSum(gs, lid) / f32(p.cols);
  let gnMean = laneSum(gns, lid) / f32(p.cols);
  for (var j = lid % LANES; j < width; j += LANES) {
    let n = (x[p.xOff + o + j] - m) * s;
    let g = dy[p.outOff + o + j] * w(j);
    var d = s * (g - gMean - n * gnMean);
    let i = p.bOff + o + j;
    if (p.accumulate != 0u) { d += dx[i]; }
    dx[i] = d;
  }
}

${COLUMN_REDUCE}
@compute @workgroup_size(${COL_X}, ${COL_Y})
fn cols(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let j = wid.x * ${COL_X}u + lid.x;
  let inside = j < p.cols;
  let rr = rowChunk(wid.y);
  var dw = 0.0;
  var db = 0.0;
  if (inside) {
    for (var r = rr.x + lid.y; r < rr.y; r += ${COL_Y}u) {
      let g = dy[p.outOff + r * p.cols + j];
      dw += g * (x[p.xOff + r * p.cols + j] - mean[p.statOff + r]) * rstd[p.statOff + r];
      db += g;
    }
  }
  dw = colReduce(dw, lid);
  db = colReduce(db, lid);
  // In chunks of rows (p.chunks > 0), binding 6 is a scratch [2, chunks, cols]: this chunk's dWeight sums, then its dBias sums.
  if (lid.y == 0u && inside && p.chunks != 0u) {
    dWeight[wid.y * p.cols + j] = dw;
    dWeight[(p.chunks + wid.y) * p.cols + j] = db;
    return;
  }
  if (lid.y == 0u && inside) {
    if (p.hasWeight != 0u) { dWeight[p.wOff + j] += dw; }
    // An arena keeps dWeight and dBias in one buffer (one binding may not be written twice): then dBias is read through dWeight.
    if (p.hasBias != 0u && p.dbInWeight != 0u) { dWeight[p.dbOff + j] += db; }
    if (p.hasBias != 0u && p.dbInWeight == 0u) { dBias[p.dbOff + j] += db; }
  }
}`;

const BINDINGS = ['read', 'read', 'read', 'read', 'read', 'rw', 'rw', 'rw'] as const;
const backwardRows = variants(String, (lanes: number): KernelSource => ({ name: `layerNormBackward_l${lanes}`, entry: 'rows', code: backwardCode(lanes), bindings: BINDINGS }));
const BACKWARD_COLS: KernelSource = { name: 'layerNormBackwardParams', entry: 'cols', code: backwardCode(ROW_WG), bindings: BINDINGS };

/**
 * dx += (or, accumulate false, =) the input gradient; dWeight and dBias always
 * accumulate. dWeight's span gives the weight's offset too (they are laid out
 * alike).
 */
export function layerNormBackward(
  ctx: GpuContext, x: GpuSpan, weight: GpuSpan | null, mean: GpuSpan, rstd: GpuSpan, dy: GpuSpan, dx: GpuSpan,
  dWeight: GpuSpan | null, dBias: GpuSpan | null, rows: number, cols: number, accumulate: boolean,
): void {
  if (mean.offset !== rstd.offset) throw new Error('webgpu layerNormBackward: mean and rstd must start at the same element of their buffers');
  if (weight && dWeight && weight.offset !== dWeight.offset) throw new Error('webgpu layerNormBackward: weight and dWeight must start at the same element');
  const hasWeight = weight !== null;
  const dbInWeight = dWeight !== null && dBias !== null && dWeight.buffer === dBias.buffer;
  const buffers = [x.buffer, weight?.buffer, mean.buffer, rstd.buffer, dy.buffer, dx.buffer, dWeight?.buffer, dbInWeight ? null : dBias?.buffer];
  const params = (hw: boolean, hb: boolean, chunkRows = rows, chunks = 0) => [
    u32(rows), u32(cols), f32(0), u32(hw ? 1 : 0), u32(hb ? 1 : 0), u32(accumulate ? 1 : 0),
    u32(x.offset), u32(weight?.offset ?? dWeight?.offset ?? 0), u32(dx.offset), u32(dy.offset), u32(mean.offset), u32(dBias?.offset ?? 0), u32(dbInWeight ? 1 : 0),
    u32(chunkRows), u32(chunks),
  ];
  const lanes = rowLanes(cols);
  ctx.dispatch(backwardRows(lanes), buffers, params(hasWeight, false), rowGroups(ctx, rows, lanes));
  if (!dWeight && !dBias) return;
  const blocks = Math.ceil(cols / COL_X);
  const { chunks, chunkRows } = columnChunks(rows, cols);
  if (chunks === 1) {
    ctx.dispatch(BACKWARD_COLS, buffers, params(dWeight !== null, dBias !== null), [blocks]);
    return;
  }
  // Many rows: each chunk's sums into a scratch, then a column sum of the chunks into dWeight and dBias (elementwise.ts).
  const part = ctx.buffer(2 * chunks * cols * 4);
  ctx.dispatch(BACKWARD_COLS, [x.buffer, weight?.buffer, mean.buffer, rstd.buffer, dy.buffer, dx.buffer, part, null], params(dWeight !== null, dBias !== null, chunkRows, chunks), [blocks, chunks]);
  if (dWeight) columnSum(ctx, span(part, 0, chunks * cols), chunks, cols, dWeight);
  if (dBias) columnSum(ctx, span(part, chunks * cols, chunks * cols), chunks, cols, dBias);
  ctx.release(part);
}
