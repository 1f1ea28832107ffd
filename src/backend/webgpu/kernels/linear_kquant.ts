import { type GpuContext, type GpuSpan, u32 } from '../device.js';
import { epilogueParams, type GpuProductEpilogue, rowsEpilogue } from './gemm_epilogue.js';
import { foldBuffers, foldedProductInput, foldParams } from './input_fold.js';
import { outputLanes } from './output_lanes.js';
import { rowGroups, rowLanes } from './workgroup_reduce.js';

/**
 * out[rows, N] = act(x[rows, K]·Wᵀ + bias) (+ addend) with W in ggml's k-quant
 * blocks (quantized_matrix.ts): q4_k (256 values in 144 bytes: f16 d and
 * dmin, eight 6-bit (scale, min) pairs, 4-bit quants; w = d·sc·q − dmin·m)
 * and q6_k (256 values in 210 bytes: 4 low and 2 high bits, sixteen int8
 * scales, f16 d; w = d·sc·(q − 32)). A Q4_K_M GGUF file holds both. As
 * js/quantized.ts does (the reference), each weight is dequantized to a float
 * and multiplied with x as it is: no activation quantization.
 *
 * A lane takes a 32-value run of a row (a q4_k sub-block, half a q6_k
 * chunk pair), every LANES-th one (output_lanes.ts), reading its scales once
 * and then 32 quants. Each weight is d·sc (rounded to f32, as js rounds it)
 * times the integer quant, less dmin·m; the sum runs in another order than
 * js's, so the product equals js's to float rounding, not bit for bit.
 * `kind` 0 is q4_k, 1 q6_k.
 */
const product = outputLanes(
  'linearKQuant',
  ['read', 'read'],
  'rows: u32, K: u32, N: u32, xOff: u32, kind: u32, oOff: u32',
  /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;`,
  (fold) => /* wgsl */ `
${KQUANT_FUNCTIONS}

fn xAt(m: u32, k: u32) -> f32 {
  return ${fold ? 'folded(m, m, k, x[p.xOff + m * p.K + k])' : 'x[p.xOff + m * p.K + k]'};
}

/** Runs of 32 values lane, lane + LANES, …: run c of row n is values 32c … 32c + 31. */
fn partial(m: u32, n: u32, lane: u32) -> f32 {
  let runs = p.K / 32u;
  var s = 0.0;
  for (var c = lane; c < runs; c += LANES) {
    let run = kRun(p.kind, n, p.K / 256u, c);
    for (var l = 0u; l < 32u; l++) { s = fma(xAt(m, 32u * c + l), kValue(run, l), s); }
  }
  return s;
}

fn finish(n: u32, s: f32) -> f32 {
  return s;
}`,
  { at: (row, k) => `x[p.xOff + (${row}) * p.K + (${k})]`, cols: 'p.K' },
);

/**
 * WGSL for reading k-quant weights from `w` (packed bytes, `byteAt`): kRun
 * finds run c (32 values) of row n — where its quants lie and its scale and
 * offset — and kValue dequantizes value l of it, as quantized_matrix.ts's
 * dequantizeRow does. Shared with the token-table lookup (embedding_quantized.ts).
 */
export const KQUANT_FUNCTIONS = /* wgsl */ `
/** A 32-value run of a k-quant row: its block's byte, which quants (bytes from q, low or high nibble or 2-bit pair), scale and offset. */
struct KRun { kind: u32, q: u32, shift: u32, qh: u32, hshift: u32, scale: f32, offset: f32, scale2: f32 }

fn f16At(i: u32) -> f32 {
  return unpack2x16float(byteAt(i) | (byteAt(i + 1u) << 8u)).x;
}

/** Run c of row n (blocks 256-value blocks a row); kind 0 q4_k, 1 q6_k. */
fn kRun(kind: u32, n: u32, blocks: u32, c: u32) -> KRun {
  let b = c / 8u;
  let r = c % 8u;
  var run: KRun;
  run.kind = kind;
  if (kind == 0u) {
    // q4_k: group g = r / 2 of 64 values, its 32 bytes; sub-block r: low nibbles (even r) or high (odd).
    let at = (n * blocks + b) * 144u;
    let s = at + 4u;
    var sc: u32;
    var mn: u32;
    if (r < 4u) {
      sc = byteAt(s + r) & 63u;
      mn = byteAt(s + r + 4u) & 63u;
    } else {
      sc = (byteAt(s + r + 4u) & 15u) | ((byteAt(s + r - 4u) >> 6u) << 4u);
      mn = (byteAt(s + r + 4u) >> 4u) | ((byteAt(s + r) >> 6u) << 4u);
    }
    run.q = at + 16u + 32u * (r / 2u);
    run.shift = 4u * (r % 2u);
    run.scale = f16At(at) * f32(sc);
    run.offset = f16At(at + 2u) * f32(mn);
  } else {
    // q6_k: half h of 128 values, quarter i of it: low bits from ql + 32·(i & 1) (nibble i / 2), high bits 2i of qh;
    // 16 values a scale: scales is + 2i and is + 2i + 1 (is = l / 16).
    let at = (n * blocks + b) * 210u;
    let h = r / 4u;
    let i = r % 4u;
    let d = f16At(at + 208u);
    run.q = at + 64u * h + 32u * (i & 1u);
    run.shift = 4u * (i / 2u);
    run.qh = at + 128u + 32u * h;
    run.hshift = 2u * i;
    let sc = at + 192u + 8u * h + 2u * i;
    run.scale = d * f32(extractBits(i32(byteAt(sc)), 0u, 8u));
    run.scale2 = d * f32(extractBits(i32(byteAt(sc + 1u)), 0u, 8u));
  }
  return run;
}

/** Value l (0 … 31) of a run, dequantized. */
fn kValue(run: KRun, l: u32) -> f32 {
  let low = (byteAt(run.q + l) >> run.shift) & 15u;
  if (run.kind == 0u) { return fma(run.scale, f32(low), -run.offset); }
  let high = (byteAt(run.qh + l) >> run.hshift) & 3u;
  let q = i32(low | (high << 4u)) - 32;
  return select(run.scale, run.scale2, l >= 16u) * f32(q);
}
`;

/** `w` holds the matrix's blocks in ggml's order (row by row) as bytes, from byte 0; K a multiple of 256. */
export function linearKQuant(
  ctx: GpuContext, x: GpuSpan, rows: number, K: number, w: GPUBuffer, type: 'q4_k' | 'q6_k', N: number, bias: GpuSpan | null, out: GpuSpan, epilogue: GpuProductEpilogue | null = null,
): void {
  const e = rowsEpilogue(bias, N, epilogue);
  // A lane per 32-value run, up to 256 lanes: rowLanes counts 8 values a lane.
  const lanes = rowLanes(K / 4);
  const groups = rowGroups(ctx, rows * N, lanes);
  // A decode step's norm or SwiGLU left pending for this product: x is computed from its input as it is read (input_fold.ts).
  const fold = foldedProductInput(ctx, x.buffer, x.offset, rows, K, groups[0] * groups[1]);
  const input = fold ? fold.input : x;
  ctx.dispatch(
    product(lanes, fold !== null),
    [input.buffer, w, e.bias, e.addend?.buffer, out.buffer, ...(fold ? foldBuffers(fold) : [])],
    [u32(rows), u32(K), u32(N), u32(input.offset), u32(type === 'q6_k' ? 1 : 0), u32(out.offset), ...epilogueParams(e), ...(fold ? foldParams(fold, K) : [])],
    groups,
  );
}
