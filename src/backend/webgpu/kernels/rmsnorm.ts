import { f32, type GpuContext, type GpuSpan, type KernelSource, span, u32 } from '../device.js';
import { COL_X, COL_Y, COLUMN_REDUCE } from './column_sums.js';
import { columnChunks, columnSum } from './elementwise.js';
import { FLAT_INDEX } from './grid.js';
import { deferInput } from './input_fold.js';
import { variants } from './variants.js';
import { laneReduce, ROW_WG, rowGroups, rowLanes } from './workgroup_reduce.js';

/**
 * RMSNorm (Llama) with js/rmsnorm.ts's formulas: s = 1/√(mean(x²) + eps),
 * out = x·s·w, s saved per row. Backward, with n = x·s and g = dy·w:
 * dx = s·(g − n·mean(g·n)), in rows of `rowLanes(cols)` invocations; dWeight += Σ_rows dy·n in a
 * second kernel, a workgroup per block of columns (and, over many rows, per
 * chunk of rows, whose sums `columnSum` adds up), as LayerNorm's
 * (column_sums.ts; deterministic: WGSL has no float atomics).
 */

const code = (lanes: number) => /* wgsl */ `
struct Params { rows: u32, cols: u32, eps: f32, hasWeight: u32, accumulate: u32,
  xOff: u32, wOff: u32, yOff: u32, dxOff: u32, statOff: u32, chunkRows: u32, chunks: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;   // out (forward) or dy (backward)
@group(0) @binding(4) var<storage, read_write> dx: array<f32>;
@group(0) @binding(5) var<storage, read_write> dWeight: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;
${FLAT_INDEX}
${laneReduce(lanes)}
fn w(j: u32) -> f32 { if (p.hasWeight != 0u) { return weight[p.wOff + j]; } return 1.0; }

@compute @workgroup_size(${ROW_WG})
fn forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = laneRow(wid, nwg, lid);
  let inside = r < p.rows;
  let width = select(0u, p.cols, inside); // a row past the last reads nothing, but reduces with its workgroup
  let xo = p.xOff + r * p.cols;
  var ss = 0.0;
  for (var j = lid % LANES; j < width; j += LANES) { ss += x[xo + j] * x[xo + j]; }
  let s = 1.0 / sqrt(laneSum(ss, lid) / f32(p.cols) + p.eps);
  if (inside && lid % LANES == 0u) { rstd[p.statOff + r] = s; }
  for (var j = lid % LANES; j < width; j += LANES) { y[p.yOff + r * p.cols + j] = x[xo + j] * s * w(j); }
}

@compute @workgroup_size(${ROW_WG})
fn rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let r = laneRow(wid, nwg, lid);
  let inside = r < p.rows;
  let width = select(0u, p.cols, inside);
  let o = r * p.cols;
  let s = select(0.0, rstd[p.statOff + r], inside);
  var gns = 0.0;
  for (var j = lid % LANES; j < width; j += LANES) { gns += y[p.yOff + o + j] * w(j) * x[p.xOff + o + j] * s; }
  let gnMean = laneSum(gns, lid) / f32(p.cols);
  for (var j = lid % LANES; j < width; j += LANES) {
    let n = x[p.xOff + o + j] * s;
    var d = s * (y[p.yOff + o + j] * w(j) - n * gnMean);
    let i = p.dxOff + o + j;
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
  if (inside) {
    for (var r = rr.x + lid.y; r < rr.y; r += ${COL_Y}u) { dw += y[p.yOff + r * p.cols + j] * x[p.xOff + r * p.cols + j] * rstd[p.statOff + r]; }
  }
  dw = colReduce(dw, lid);
  // In chunks of rows (p.chunks > 0) binding 5 is a scratch [chunks, cols].
  if (lid.y == 0u && inside) {
    if (p.chunks != 0u) { dWeight[wid.y * p.cols + j] = dw; } else { dWeight[p.wOff + j] += dw; }
  }
}`;

const BINDINGS = ['read', 'read', 'rw', 'rw', 'rw', 'rw'] as const;
const forward = variants(String, (lanes: number): KernelSource => ({ name: `rmsNormForward_l${lanes}`, entry: 'forward', code: code(lanes), bindings: BINDINGS }));
const backwardRows = variants(String, (lanes: number): KernelSource => ({ name: `rmsNormBackward_l${lanes}`, entry: 'rows', code: code(lanes), bindings: BINDINGS }));
const BACKWARD_COLS: KernelSource = { name: 'rmsNormBackwardWeight', entry: 'cols', code: code(ROW_WG), bindings: BINDINGS };

/** out = w·x/√(mean(x²) + eps) per row; rstd receives each row's 1/√(mean(x²) + eps). */
export function rmsNormForward(ctx: GpuContext, x: GpuSpan, weight: GpuSpan | null, out: GpuSpan, rstd: GpuSpan, rows: number, cols: number, eps: number): void {
  const lanes = rowLanes(cols);
  const run = () => ctx.dispatch(
    forward(lanes),
    [x.buffer, weight?.buffer, rstd.buffer, out.buffer, null, null],
    [u32(rows), u32(cols), f32(eps), u32(weight ? 1 : 0), u32(0), u32(x.offset), u32(weight?.offset ?? 0), u32(out.offset), u32(0), u32(rstd.offset), u32(rows), u32(0)],
    rowGroups(ctx, rows, lanes),
  );
  // A decode step's few rows: left for the product that reads them to fold in (input_fold.ts).
  if (!deferInput(ctx, { kind: 'rms', input: x, weight, bias: null, eps, rows, cols, out }, [rstd], run)) run();
}

/** dx += (or, accumulate false, =) the input gradient; dWeight (laid out as weight, same offset) always accumulates. */
export function rmsNormBackward(
  ctx: GpuContext, x: GpuSpan, weight: GpuSpan | null, rstd: GpuSpan, dy: GpuSpan, dx: GpuSpan,
  dWeight: GpuSpan | null, rows: number, cols: number, accumulate: boolean,
): void {
  if (weight && dWeight && weight.offset !== dWeight.offset) throw new Error('webgpu rmsNormBackward: weight and dWeight must start at the same element');
  // dy is bound read-write only because forward's output shares its slot; backward never writes it.
  const buffers = [x.buffer, weight?.buffer, rstd.buffer, dy.buffer, dx.buffer, dWeight?.buffer];
  const params = (chunkRows = rows, chunks = 0) => [
    u32(rows), u32(cols), f32(0), u32(weight ? 1 : 0), u32(accumulate ? 1 : 0),
    u32(x.offset), u32(weight?.offset ?? dWeight?.offset ?? 0), u32(dy.offset), u32(dx.offset), u32(rstd.offset), u32(chunkRows), u32(chunks),
  ];
  const lanes = rowLanes(cols);
  ctx.dispatch(backwardRows(lanes), buffers, params(), rowGroups(ctx, rows, lanes));
  if (!dWeight) return;
  const blocks = Math.ceil(cols / COL_X);
  const { chunks, chunkRows } = columnChunks(rows, cols);
  if (chunks === 1) {
    ctx.dispatch(BACKWARD_COLS, buffers, params(), [blocks]);
    return;
  }
  const part = ctx.buffer(chunks * cols * 4);
  ctx.dispatch(BACKWARD_COLS, [x.buffer, weight?.buffer, rstd.buffer, dy.buffer, dx.buffer, part], params(chunkRows, chunks), [blocks, chunks]);
  columnSum(ctx, span(part, 0, chunks * cols), chunks, cols, dWeight);
  ctx.release(part);
}
