import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

export interface MaskedAttentionOptions {
  /** Query i may only look at keys j ≤ i (decoder self-attention). */
  causal?: boolean;
  /** B·Tk flags, 1 where a key is padding: no query attends to it (the podcast's padding mask). */
  keyPadding?: Uint8Array;
  /** Defaults to 1/√headDim. */
  scale?: number;
  /** Keep the attention weights [B, nHead, Tq, Tk] on the result (for --show-attention). */
  keepWeights?: boolean;
}

export interface MaskedAttentionResult {
  out: Tensor;
  /** softmax(q·kᵀ·scale) per head, [B, nHead, Tq, Tk], when keepWeights was asked. */
  weights: Float32Array | null;
}

interface Dims {
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  D: number;
  C: number;
}

/**
 * Attention where queries and keys may come from different sequences
 * (cross-attention: decoder queries, encoder keys and values) and some keys
 * may be hidden (padding, or the future). q is [B, Tq, C]; k and v are
 * [B, Tk, C]; heads side by side in C. The three products (q·kᵀ, P·v and
 * their gradients) are backend GEMMs with the heads as the GEMM batch; the
 * mask and softmax between them are plain loops over the [B, nHead, Tq, Tk]
 * weights, which these models keep small.
 */
export function maskedAttention(q: Tensor, k: Tensor, v: Tensor, nHead: number, opts: MaskedAttentionOptions = {}): MaskedAttentionResult {
  const d = dims(q, k, v, nHead);
  if (opts.keyPadding && opts.keyPadding.length !== d.B * d.Tk) throw new Error(`key padding mask has ${opts.keyPadding.length} flags, expected ${d.B}×${d.Tk}`);
  const scale = opts.scale ?? 1 / Math.sqrt(d.D);
  const P = new Float32Array(d.B * d.H * d.Tq * d.Tk);
  headProducts(d, { a: q.data, rowsA: d.Tq, b: k.data, rowsB: d.Tk, transB: true, c: P, ldc: d.Tk, alpha: scale });
  maskedSoftmax(P, d, opts);
  const out = Tensor.zeros([d.B, d.Tq, d.C]);
  headProducts(d, { a: P, lda: d.Tk, rowsA: d.Tq, b: v.data, rowsB: d.Tk, c: out.data });
  record(out, [q, k, v], 'maskedAttention', () => attentionBackward(q, k, v, P, out.grad!, d, scale));
  return { out, weights: opts.keepWeights ? P : null };
}

function dims(q: Tensor, k: Tensor, v: Tensor, H: number): Dims {
  if (q.rank !== 3 || k.rank !== 3 || k.shape.join() !== v.shape.join() || q.shape[0] !== k.shape[0] || q.shape[2] !== k.shape[2]) {
    throw new Error(`attention expects q [B, Tq, C] and k, v [B, Tk, C]; got [${q.shape}], [${k.shape}], [${v.shape}]`);
  }
  const [B, Tq, C] = q.shape as [number, number, number];
  if (C % H !== 0) throw new Error(`attention: ${C} channels do not split into ${H} heads`);
  return { B, Tq, Tk: k.shape[1]!, H, D: C / H, C };
}

/**
 * One GEMM per batch row, its heads as the GEMM batch. An operand is either
 * per-head weights [B, H, rows, Tk] (given lda = Tk) or activations
 * [B, rows, C] whose head h is the column block h·D … h·D + D.
 */
interface HeadProduct {
  a: Float32Array;
  /** Set for a weights operand; activations use C. */
  lda?: number;
  rowsA: number;
  transA?: boolean;
  b: Float32Array;
  ldb?: number;
  rowsB: number;
  transB?: boolean;
  c: Float32Array;
  ldc?: number;
  alpha?: number;
  accumulate?: boolean;
}

function headProducts(d: Dims, p: HeadProduct): void {
  const { B, Tq, Tk, H, D, C } = d;
  // Stored layout of one head's matrix: weights are [Tq, Tk] blocks, activations a [rows, D] column block.
  const operand = (ld: number | undefined, rows: number) =>
    ld === undefined ? { ld: C, stride: D, size: rows * C, rows, cols: D } : { ld, stride: Tq * Tk, size: H * Tq * Tk, rows, cols: Tk };
  const A = operand(p.lda, p.rowsA);
  const Bm = operand(p.ldb, p.rowsB);
  const transA = p.transA ?? false;
  const transB = p.transB ?? false;
  const M = transA ? A.cols : A.rows;
  const K = transA ? A.rows : A.cols;
  const N = transB ? Bm.rows : Bm.cols;
  const Cm = operand(p.ldc, M);
  for (let b = 0; b < B; b++) {
    backend().gemm({
      transA, transB, M, N, K,
      a: p.a, aOffset: b * A.size, lda: A.ld, strideA: A.stride,
      b: p.b, bOffset: b * Bm.size, ldb: Bm.ld, strideB: Bm.stride,
      c: p.c, cOffset: b * Cm.size, ldc: Cm.ld, strideC: Cm.stride,
      alpha: p.alpha ?? 1, accumulate: p.accumulate ?? false, batch: H,
    });
  }
}

function visible(b: number, i: number, j: number, d: Dims, opts: MaskedAttentionOptions): boolean {
  if (opts.causal && j > i) return false;
  return !(opts.keyPadding && opts.keyPadding[b * d.Tk + j]);
}

/** Each row of scores becomes softmax over its visible keys; hidden keys get weight 0, and a row with none stays all 0. */
function maskedSoftmax(P: Float32Array, d: Dims, opts: MaskedAttentionOptions): void {
  const { B, Tq, Tk, H } = d;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Tq; i++) {
        const p = P.subarray(((b * H + h) * Tq + i) * Tk, ((b * H + h) * Tq + i + 1) * Tk);
        let max = -Infinity;
        for (let j = 0; j < Tk; j++) if (visible(b, i, j, d, opts) && p[j]! > max) max = p[j]!;
        let total = 0;
        for (let j = 0; j < Tk; j++) {
          // Subtracting the max keeps exp from overflowing.
          p[j] = max === -Infinity || !visible(b, i, j, d, opts) ? 0 : Math.exp(p[j]! - max);
          total += p[j]!;
        }
        if (total > 0) for (let j = 0; j < Tk; j++) p[j] = p[j]! / total;
      }
    }
  }
}

/**
 * With dOut: dv = Pᵀ·dOut and dP = dOut·vᵀ; the softmax turns dP into
 * dS = P∘(dP − rowsum(P∘dP)); then dq = scale·dS·k and dk = scale·dSᵀ·q.
 */
function attentionBackward(q: Tensor, k: Tensor, v: Tensor, P: Float32Array, dOut: Float32Array, d: Dims, scale: number): void {
  const { Tq, Tk } = d;
  if (v.requiresGrad) headProducts(d, { a: P, lda: Tk, rowsA: Tq, transA: true, b: dOut, rowsB: Tq, c: v.ensureGrad(), accumulate: true });
  const dS = new Float32Array(P.length);
  headProducts(d, { a: dOut, rowsA: Tq, b: v.data, rowsB: Tk, transB: true, c: dS, ldc: Tk });
  for (let r = 0; r < P.length; r += Tk) {
    let dot = 0;
    for (let j = r; j < r + Tk; j++) dot += P[j]! * dS[j]!;
    for (let j = r; j < r + Tk; j++) dS[j] = P[j]! * (dS[j]! - dot);
  }
  if (q.requiresGrad) headProducts(d, { a: dS, lda: Tk, rowsA: Tq, b: k.data, rowsB: Tk, c: q.ensureGrad(), alpha: scale, accumulate: true });
  if (k.requiresGrad) headProducts(d, { a: dS, lda: Tk, rowsA: Tq, transA: true, b: q.data, rowsB: Tq, c: k.ensureGrad(), alpha: scale, accumulate: true });
}
