import { type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { epilogueParams, type GpuProductEpilogue, rowsEpilogue } from './gemm_epilogue.js';
import { FOLD_FIELDS, foldBuffers, foldedProductInput, foldParams, foldPrologue, MAX_FOLD_ROWS } from './input_fold.js';
import { variants } from './variants.js';
import { FLAT_INDEX, grid, WG } from './grid.js';
import { outputLanes } from './output_lanes.js';
import { rowGroups, rowLanes } from './workgroup_reduce.js';

/**
 * out[rows, N] = act(x[rows, K]·Wᵀ + bias) (+ addend) with W in ggml's q8_0 or q4_0 blocks
 * (js/quantized.ts, the reference), read on the GPU as GGUF stores them:
 * each row is K/32 blocks of an f16 scale and 32 quants (q8_0: 32 int8 bytes;
 * q4_0: 16 bytes of two 4-bit quants, offset by 8). The bytes go up as they
 * are, four to a u32 word, so decoding reads a quarter (q8_0) or an eighth
 * (q4_0) of fp32's bytes.
 *
 * As llama.cpp and js do, the activations are first quantized to 8-bit
 * blocks (d = max|x|/127, q = round(x/d), halves away from zero), and each
 * pair of blocks adds d_w·d_x·Σ q_w·q_x, the Σ an exact integer sum. Two
 * kernels: one invocation per activation block, then a group of lanes per
 * output element, a lane per block up to 256 (output_lanes.ts).
 * WGSL's f32 division is not correctly rounded, so an activation quant can
 * differ from js's by one where x/d lies on a half: equal to js within that.
 *
 * The quantized activations of the last x are kept while nothing writes x
 * (`ctx.writes`): q, k and v (and gate and up) read the same normed x, so
 * each layer quantizes it once, not three times (and twice).
 */

/** One invocation per activation block; with `fold`, x holds a pending producer's input (input_fold.ts), from which each value is computed as it is read. */
const quantize = variants(String, (fold: boolean): KernelSource => ({
  name: `quantizeActivations${fold ? '_fold' : ''}`,
  bindings: fold ? ['read', 'rw', 'rw', 'read', 'read'] : ['read', 'rw', 'rw'],
  code: /* wgsl */ `
struct Params { blocks: u32, xOff: u32, rows: u32, cols: u32, ${fold ? FOLD_FIELDS : ''} }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> xq: array<i32>;
@group(0) @binding(2) var<storage, read_write> xd: array<f32>;
@group(0) @binding(${fold ? 5 : 3}) var<uniform> p: Params;
${FLAT_INDEX}
${fold ? foldPrologue({ binding: 3, wg: WG, rows: `min(p.rows, ${MAX_FOLD_ROWS}u)`, rowAt: (r) => r, at: (row, k) => `x[p.xOff + (${row}) * p.cols + (${k})]`, cols: 'p.cols' }) : ''}

/** Round half away from zero (js's roundf; WGSL's round() takes halves to even). */
fn roundAway(v: f32) -> f32 {
  let a = abs(v);
  var t = trunc(a);
  if (a - t >= 0.5) { t += 1.0; }
  return sign(v) * t;
}

/** Value j of block b (32 values from element o of x). */
fn value(b: u32, o: u32, j: u32) -> f32 {
  ${fold ? 'let row = b * 32u / p.cols;\n  return folded(row, row, (b * 32u) % p.cols + j, x[o + j]);' : 'return x[o + j];'}
}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${fold ? 'foldStats(lid);' : ''}
  let b = flat(gid, nwg);
  if (b >= p.blocks) { return; }
  let o = p.xOff + b * 32u;
  var amax = 0.0;
  for (var j = 0u; j < 32u; j++) { amax = max(amax, abs(value(b, o, j))); }
  let d = amax / 127.0;
  let id = select(0.0, 1.0 / d, d != 0.0);
  xd[b] = d;
  for (var j = 0u; j < 32u; j++) { xq[b * 32u + j] = i32(roundAway(value(b, o, j) * id)); }
}`,
}));

const product = outputLanes(
  'linearQuantized',
  ['read', 'read', 'read'],
  'rows: u32, N: u32, blocks: u32, q4: u32, oOff: u32',
  /* wgsl */ `
@group(0) @binding(0) var<storage, read> xq: array<i32>;
@group(0) @binding(1) var<storage, read> xd: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<u32>;`,
  () => /* wgsl */ `
/** Σ q_w·q_x of the weight block whose quants start at byte q and the activation block from xq[xb]: an exact integer sum. */
fn blockDot(q: u32, xb: u32) -> i32 {
  var s = 0;
  if (p.q4 != 0u) {
    for (var j = 0u; j < 16u; j++) {
      let byte = byteAt(q + j);
      s += (i32(byte & 15u) - 8) * xq[xb + j] + (i32(byte >> 4u) - 8) * xq[xb + 16u + j];
    }
  } else {
    for (var j = 0u; j < 32u; j++) { s += extractBits(i32(byteAt(q + j)), 0u, 8u) * xq[xb + j]; }
  }
  return s;
}

/** Blocks lane, lane + LANES, …: each adds d_w·d_x·Σ q_w·q_x (d_w the block's f16 scale). */
fn partial(m: u32, n: u32, lane: u32) -> f32 {
  let blockBytes = select(34u, 18u, p.q4 != 0u);
  var s = 0.0;
  for (var b = lane; b < p.blocks; b += LANES) {
    let at = (n * p.blocks + b) * blockBytes;
    let dw = unpack2x16float(byteAt(at) | (byteAt(at + 1u) << 8u)).x;
    s += dw * xd[m * p.blocks + b] * f32(blockDot(at + 2u, (m * p.blocks + b) * 32u));
  }
  return s;
}

fn finish(n: u32, s: f32) -> f32 {
  return s;
}`,
);

/**
 * `w` holds the matrix's blocks in ggml's order (row by row) as bytes, from
 * byte 0; `type` is q8_0 or q4_0 (K a multiple of 32).
 */
export function linearQuantized(
  ctx: GpuContext, x: GpuSpan, rows: number, K: number, w: GPUBuffer, type: 'q8_0' | 'q4_0', N: number, bias: GpuSpan | null, out: GpuSpan, epilogue: GpuProductEpilogue | null = null,
): void {
  const e = rowsEpilogue(bias, N, epilogue);
  const blocks = K / 32;
  const { xq, xd } = quantizedActivations(ctx, x, rows, K);
  // A lane per block (32 values) up to 256 lanes: rowLanes counts 8 values a lane.
  const lanes = rowLanes(blocks * 8);
  ctx.dispatch(
    product(lanes),
    [xq, xd, w, e.bias, e.addend?.buffer, out.buffer],
    [u32(rows), u32(N), u32(blocks), u32(type === 'q4_0' ? 1 : 0), u32(out.offset), ...epilogueParams(e)],
    rowGroups(ctx, rows * N, lanes),
  );
}

/** x's 8-bit blocks (quants xq, scales xd) as of the recorded work, and the count of x's writes they were made at. */
interface Quantized {
  x: GPUBuffer;
  offset: number;
  length: number;
  writes: number;
  xq: GPUBuffer;
  xd: GPUBuffer;
}

const lastQuantized = new WeakMap<GpuContext, Quantized>();

/**
 * x's rows × cols values in 8-bit blocks: the last ones again if x is the
 * same span and nothing has written it since, else quantized now — computed
 * from the pending producer's input as it is read, when x is a decode step's
 * norm or SwiGLU left for its readers to fold in (input_fold.ts).
 */
function quantizedActivations(ctx: GpuContext, x: GpuSpan, rows: number, cols: number): Quantized {
  const n = rows * cols;
  const last = lastQuantized.get(ctx);
  if (last && last.x === x.buffer && last.offset === x.offset && last.length === n && last.writes === ctx.writes(x.buffer)) return last;
  if (last) {
    ctx.release(last.xq);
    ctx.release(last.xd);
  }
  const blocks = n / 32;
  const q: Quantized = { x: x.buffer, offset: x.offset, length: n, writes: ctx.writes(x.buffer), xq: ctx.buffer(Math.max(1, n) * 4), xd: ctx.buffer(Math.max(1, blocks) * 4) };
  const groups = grid(ctx, blocks);
  const fold = foldedProductInput(ctx, x.buffer, x.offset, rows, cols, groups[0] * groups[1]);
  const input = fold ? fold.input : x;
  ctx.dispatch(
    quantize(fold !== null),
    fold ? [input.buffer, q.xq, q.xd, ...foldBuffers(fold)] : [input.buffer, q.xq, q.xd],
    [u32(blocks), u32(input.offset), u32(rows), u32(cols), ...(fold ? foldParams(fold, cols) : [])],
    groups,
  );
  lastQuantized.set(ctx, q);
  return q;
}
