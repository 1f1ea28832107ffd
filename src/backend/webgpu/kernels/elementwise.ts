import type { BinaryOp, UnaryOp } from '../../backend.js';
import { broadcastStrides } from '../../js/elementwise.js';
import { f32, type GpuContext, type GpuSpan, type KernelSource, type Param, u32 } from '../device.js';
import { COL_X, COL_Y, COLUMN_REDUCE } from './column_sums.js';
import { FLAT_INDEX, grid, WG } from './grid.js';

/**
 * Elementwise kernels, one invocation per output element, with the same
 * formulas as js/elementwise.ts: binary ops with NumPy broadcasting, the sum
 * that undoes a broadcast (reduceSumTo), the activations forward and
 * backward (GELU in GPT-2's tanh form, SiLU, ReLU…) and scaling.
 *
 * The op is a uniform, not a compiled variant: every invocation takes the same
 * branch of the switch, which costs nothing next to the memory traffic, and
 * one pipeline serves all ops.
 */

/** Broadcast shapes are passed padded to this rank. */
export const MAX_RANK = 8;

const UNARY_OPS: readonly UnaryOp[] = ['exp', 'log', 'relu', 'gelu', 'silu', 'tanh', 'neg', 'sqrt'];
const BINARY_OPS: readonly BinaryOp[] = ['add', 'sub', 'mul', 'div'];

/**
 * The activations as WGSL functions, shared with the GEMM's epilogue
 * (gemm_epilogue.ts). tanh goes through a clamp: tanh(±10) is ±1 in f32, and
 * some GPUs' tanh gives NaN where exp overflows.
 */
export const ACTIVATIONS = /* wgsl */ `fn tanhSafe(x: f32) -> f32 { return tanh(clamp(x, -10.0, 10.0)); }
const GELU_C: f32 = 0.7978845608028654; // √(2/π)
fn sigmoid(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn relu(v: f32) -> f32 { return select(0.0, v, v > 0.0); }
fn gelu(v: f32) -> f32 { return 0.5 * v * (1.0 + tanhSafe(GELU_C * (v + 0.044715 * v * v * v))); }
fn silu(v: f32) -> f32 { return v * sigmoid(v); }`;

const UNARY: KernelSource = {
  name: 'unary',
  bindings: ['read', 'rw'],
  code: /* wgsl */ `
struct Params { n: u32, xOff: u32, outOff: u32, op: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
${FLAT_INDEX}
${ACTIVATIONS}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n) { return; }
  let v = x[p.xOff + i];
  var y: f32;
  switch p.op {
    case 0u: { y = exp(v); }
    case 1u: { y = log(v); }
    case 2u: { y = relu(v); }
    case 3u: { y = gelu(v); }
    case 4u: { y = silu(v); }
    case 5u: { y = tanhSafe(v); }
    case 6u: { y = -v; }
    default: { y = sqrt(v); }
  }
  out[p.outOff + i] = y;
}`,
};

/** out = f(x). */
export function unary(ctx: GpuContext, op: UnaryOp, x: GpuSpan, out: GpuSpan): void {
  ctx.dispatch(UNARY, [x.buffer, out.buffer], [u32(x.length), u32(x.offset), u32(out.offset), u32(UNARY_OPS.indexOf(op))], grid(ctx, x.length));
}

const UNARY_BACKWARD: KernelSource = {
  name: 'unaryBackward',
  bindings: ['read', 'read', 'read', 'rw'],
  code: /* wgsl */ `
struct Params { n: u32, xOff: u32, yOff: u32, dyOff: u32, dxOff: u32, op: u32, accumulate: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
${FLAT_INDEX}
${ACTIVATIONS}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n) { return; }
  let v = x[p.xOff + i];
  let w = y[p.yOff + i];
  let g = dy[p.dyOff + i];
  var d: f32;
  switch p.op {
    case 0u: { d = g * w; }
    case 1u: { d = g / v; }
    case 2u: { d = select(0.0, g, v > 0.0); }
    case 3u: {
      let t = tanhSafe(GELU_C * (v + 0.044715 * v * v * v));
      let du = GELU_C * (1.0 + 3.0 * 0.044715 * v * v);
      d = g * (0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * du);
    }
    case 4u: { let s = sigmoid(v); d = g * s * (1.0 + v * (1.0 - s)); }
    case 5u: { d = g * (1.0 - w * w); }
    case 6u: { d = -g; }
    default: { d = g * 0.5 / w; }
  }
  let o = p.dxOff + i;
  if (p.accumulate != 0u) { d = dx[o] + d; }
  dx[o] = d;
}`,
};

/** dx (+)= dy·f'(x), given x and y = f(x). */
export function unaryBackward(ctx: GpuContext, op: UnaryOp, x: GpuSpan, y: GpuSpan, dy: GpuSpan, dx: GpuSpan, accumulate: boolean): void {
  ctx.dispatch(
    UNARY_BACKWARD,
    [x.buffer, y.buffer, dy.buffer, dx.buffer],
    [u32(x.length), u32(x.offset), u32(y.offset), u32(dy.offset), u32(dx.offset), u32(UNARY_OPS.indexOf(op)), u32(accumulate ? 1 : 0)],
    grid(ctx, x.length),
  );
}

/** WGSL: a rank-8 shape or stride list, packed as two vec4s (uniform arrays have 16-byte elements). */
export const dims = (name: string) => `${name}: array<vec4<u32>, ${MAX_RANK / 4}>`;
export const DIM = /* wgsl */ `fn at(v: array<vec4<u32>, ${MAX_RANK / 4}>, d: u32) -> u32 { return v[d / 4u][d % 4u]; }`;

/** Padded to MAX_RANK with leading 1s (sizes) or 0s (strides), as uniform fields. */
export function padded(values: readonly number[], fill: number): Param[] {
  if (values.length > MAX_RANK) throw new Error(`webgpu elementwise: rank ${values.length} is over ${MAX_RANK}`);
  return [...new Array<number>(MAX_RANK - values.length).fill(fill), ...values].map(u32);
}

const BINARY: KernelSource = {
  name: 'binary',
  bindings: ['read', 'read', 'rw'],
  code: /* wgsl */ `
struct Params { ${dims('shape')}, ${dims('sa')}, ${dims('sb')}, n: u32, aOff: u32, bOff: u32, outOff: u32, op: u32 }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${FLAT_INDEX}
${DIM}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n) { return; }
  // Walk the output index from the last dimension, adding each operand's (broadcast) stride.
  var rest = i;
  var ia = p.aOff;
  var ib = p.bOff;
  for (var d = ${MAX_RANK - 1}i; d >= 0; d--) {
    let size = at(p.shape, u32(d));
    let k = rest % size;
    rest = rest / size;
    ia += k * at(p.sa, u32(d));
    ib += k * at(p.sb, u32(d));
  }
  let x = a[ia];
  let y = b[ib];
  var r: f32;
  switch p.op {
    case 0u: { r = x + y; }
    case 1u: { r = x - y; }
    case 2u: { r = x * y; }
    default: { r = x / y; }
  }
  out[p.outOff + i] = r;
}`,
};

/** out = a ∘ b with NumPy broadcasting; shapes already aligned to out's rank. */
export function binary(ctx: GpuContext, op: BinaryOp, a: GpuSpan, aShape: number[], b: GpuSpan, bShape: number[], out: GpuSpan, outShape: number[]): void {
  const n = outShape.reduce((x, y) => x * y, 1);
  ctx.dispatch(
    BINARY,
    [a.buffer, b.buffer, out.buffer],
    [
      ...padded(outShape, 1), ...padded(broadcastStrides(aShape, outShape), 0), ...padded(broadcastStrides(bShape, outShape), 0),
      u32(n), u32(a.offset), u32(b.offset), u32(out.offset), u32(BINARY_OPS.indexOf(op)),
    ],
    grid(ctx, n),
  );
}

const REDUCE_SUM_TO: KernelSource = {
  name: 'reduceSumTo',
  bindings: ['read', 'rw'],
  code: /* wgsl */ `
struct Params { ${dims('srcShape')}, ${dims('dstShape')}, n: u32, count: u32, srcOff: u32, dstOff: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
${FLAT_INDEX}
${DIM}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n) { return; }
  // The source offset of this destination element's first term: its index in the kept dimensions.
  var base = 0u;
  var rest = i;
  var stride = 1u;
  for (var d = ${MAX_RANK - 1}i; d >= 0; d--) {
    let size = at(p.dstShape, u32(d));
    base += (rest % size) * stride;
    rest = rest / size;
    stride *= at(p.srcShape, u32(d));
  }
  // Then every combination of the reduced dimensions, in the source's row-major order (as js sums).
  var sum = dst[p.dstOff + i];
  for (var t = 0u; t < p.count; t++) {
    var off = base;
    var r = t;
    var s = 1u;
    for (var d = ${MAX_RANK - 1}i; d >= 0; d--) {
      let size = at(p.srcShape, u32(d));
      if (at(p.dstShape, u32(d)) == 1u && size > 1u) {
        off += (r % size) * s;
        r = r / size;
      }
      s *= size;
    }
    sum += src[p.srcOff + off];
  }
  dst[p.dstOff + i] = sum;
}`,
};

/**
 * The common case, a bias gradient: src [rows, cols] summed over its rows
 * into dst [cols] (added), a workgroup per block of columns and chunk of
 * rows. With one chunk it adds into dst; with several (`partial`), chunk y
 * writes its sums to row y of a scratch [chunks, cols], which a second run
 * of the same kernel sums into dst.
 */
const COLUMN_SUM: KernelSource = {
  name: 'columnSum',
  bindings: ['read', 'rw'],
  code: /* wgsl */ `
struct Params { rows: u32, cols: u32, srcOff: u32, dstOff: u32, chunkRows: u32, partial: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
${COLUMN_REDUCE}
@compute @workgroup_size(${COL_X}, ${COL_Y})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let j = wid.x * ${COL_X}u + lid.x;
  let rr = rowChunk(wid.y);
  var s = 0.0;
  if (j < p.cols) {
    for (var r = rr.x + lid.y; r < rr.y; r += ${COL_Y}u) { s += src[p.srcOff + r * p.cols + j]; }
  }
  s = colReduce(s, lid);
  if (lid.y == 0u && j < p.cols) {
    if (p.partial != 0u) { dst[wid.y * p.cols + j] = s; } else { dst[p.dstOff + j] += s; }
  }
}`,
};

/** Workgroups a column sum should reach by cutting its rows into chunks (a width-384 bias has 24 blocks of columns; a big GPU has over a hundred cores). */
const COLUMN_SUM_TARGET = 256;
/** Rows per chunk at least (16 per lane). */
const MIN_CHUNK_ROWS = 16 * COL_Y;
/** Elements a matrix needs before its rows are cut (config M's 4 096 × 384 has 1.6 M; S's 768 × 128, 98 k, is over in microseconds in one pass). */
export const MIN_CHUNKED_ELEMENTS = 2 ** 19;

/** How a column sum of a [rows, cols] matrix is cut: `chunks` of `chunkRows` rows (a multiple of the lanes per column). */
export function columnChunks(rows: number, cols: number): { chunks: number; chunkRows: number } {
  const blocks = Math.ceil(cols / COL_X);
  const want = rows * cols < MIN_CHUNKED_ELEMENTS ? 1 : Math.min(Math.ceil(COLUMN_SUM_TARGET / blocks), Math.floor(rows / MIN_CHUNK_ROWS));
  if (want < 2) return { chunks: 1, chunkRows: rows };
  const chunkRows = Math.ceil(rows / want / COL_Y) * COL_Y;
  return { chunks: Math.ceil(rows / chunkRows), chunkRows };
}

/** dst[dstOffset + j] += Σ_r src[srcOffset + r·cols + j]: in one pass, or in chunks of rows and a second pass over their sums. */
export function columnSum(ctx: GpuContext, src: GpuSpan, rows: number, cols: number, dst: GpuSpan): void {
  const blocks = Math.ceil(cols / COL_X);
  const { chunks, chunkRows } = columnChunks(rows, cols);
  if (chunks === 1) {
    ctx.dispatch(COLUMN_SUM, [src.buffer, dst.buffer], [u32(rows), u32(cols), u32(src.offset), u32(dst.offset), u32(rows), u32(0)], [blocks]);
    return;
  }
  const part = ctx.buffer(chunks * cols * 4);
  ctx.dispatch(COLUMN_SUM, [src.buffer, part], [u32(rows), u32(cols), u32(src.offset), u32(0), u32(chunkRows), u32(1)], [blocks, chunks]);
  ctx.dispatch(COLUMN_SUM, [part, dst.buffer], [u32(chunks), u32(cols), u32(0), u32(dst.offset), u32(chunks), u32(0)], [blocks]);
  ctx.release(part);
}

/**
 * When the reduced dimensions are exactly the leading ones (dst [1, …, 1,
 * kept…]), src is a [rows, cols] matrix summed over its rows: the number of
 * columns, else 0.
 */
function leadingReduction(srcShape: number[], dstShape: number[]): number {
  let d = 0;
  while (d < dstShape.length && dstShape[d] === 1) d++;
  for (let i = d; i < dstShape.length; i++) if (dstShape[i] !== srcShape[i]) return 0;
  return dstShape.slice(d).reduce((x, y) => x * y, 1);
}

/** Sum src (srcShape) down to dst (dstShape: same rank, 1 where reduced), adding into dst. */
export function reduceSumTo(ctx: GpuContext, src: GpuSpan, srcShape: number[], dst: GpuSpan, dstShape: number[]): void {
  const n = dstShape.reduce((x, y) => x * y, 1);
  const total = srcShape.reduce((x, y) => x * y, 1);
  const cols = leadingReduction(srcShape, dstShape);
  if (cols > 0 && total / cols > 1) return columnSum(ctx, src, total / cols, cols, dst);
  ctx.dispatch(
    REDUCE_SUM_TO,
    [src.buffer, dst.buffer],
    [...padded(srcShape, 1), ...padded(dstShape, 1), u32(n), u32(total / n), u32(src.offset), u32(dst.offset)],
    grid(ctx, n),
  );
}

const SCALE: KernelSource = {
  name: 'scale',
  bindings: ['rw'],
  code: /* wgsl */ `
struct Params { n: u32, off: u32, s: f32 }
@group(0) @binding(0) var<storage, read_write> x: array<f32>;
@group(0) @binding(1) var<uniform> p: Params;
${FLAT_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i < p.n) { x[p.off + i] = x[p.off + i] * p.s; }
}`,
};

/** x *= s, in place. */
export function scaleInPlace(ctx: GpuContext, x: GpuSpan, s: number): void {
  ctx.dispatch(SCALE, [x.buffer], [u32(x.length), u32(x.offset), f32(s)], grid(ctx, x.length));
}
