import type { QuantizedMatrix } from './quantized_matrix.js';

/**
 * The Backend is the only layer that loops over numbers. Ops (src/tensor)
 * decide shapes and record gradients; a backend fills typed arrays.
 *
 * The `js` backend is the readable reference that runs everywhere (Node and
 * browsers). A faster backend (native SIMD, WebGPU) implements the same
 * entry points and is tested against `js`. The fused entry points —
 * attention, cross-entropy, AdamW — exist so that such a backend can avoid
 * materialising intermediates; `js` implements them plainly.
 */

/** C = alpha·op(A)·op(B) (+ C when accumulate), for `batch` independent matrices. */
export interface GemmArgs {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  a: Float32Array;
  aOffset: number;
  /** Row stride of A as stored (elements between consecutive stored rows). */
  lda: number;
  b: Float32Array;
  bOffset: number;
  ldb: number;
  c: Float32Array;
  cOffset: number;
  ldc: number;
  alpha: number;
  /** Add into C instead of overwriting it (used to accumulate gradients). */
  accumulate: boolean;
  batch: number;
  /** Offsets between consecutive matrices of the batch; 0 reuses the same matrix. */
  strideA: number;
  strideB: number;
  strideC: number;
  /** Optional length-N vector added to every row of C (a Linear layer's bias, fused). */
  bias?: Float32Array | null;
  /**
   * Mixed precision: A and B rounded to bfloat16 (js/bf16.ts), products summed
   * in FP32 (wider in js); the bias and C stay FP32.
   */
  bf16?: boolean;
}

/**
 * Shapes for attention of Tq queries against Tk keys and values, heads side by
 * side in each row: q [B, Tq, nHead·headDim], k and v [B, Tk, nKvHead·headDim].
 */
export interface AttentionDims {
  B: number;
  /** Query positions. */
  Tq: number;
  /** Key/value positions (Tq for self-attention). */
  Tk: number;
  nHead: number;
  /**
   * Key/value heads; divides nHead. Query head h reads key/value head
   * floor(h / (nHead / nKvHead)) in place (grouped-query attention; 1 = multi-query).
   */
  nKvHead: number;
  headDim: number;
  /** Query i sees keys j ≤ i + (Tk − Tq) (the last query sees every key). */
  causal: boolean;
  scale: number;
  /** Row stride of q and dq (default nHead·headDim): (nHead + 2·nKvHead)·headDim when read in place from one packed projection. */
  qStride?: number;
  /** Row stride of k, v, dk and dv (default nKvHead·headDim). */
  kvStride?: number;
  /** B·Tk flags, 1 = this key is hidden from every query of its row (padding). */
  keyPadding?: Uint8Array | null;
  /**
   * Dropout on the attention probabilities (GPT-2's attn_dropout). The mask of
   * probability (b, h, i, j) is dropBits(seed, ((b·nHead + h)·Tq + i)·Tk + j)
   * (js/dropout.ts), recomputed by the backward pass, never stored.
   */
  dropout?: { p: number; seed: number } | null;
}

/**
 * Shapes for attention of Tq new queries [B, Tq, nHead·headDim] against a KV
 * cache [B, cap, nKvHead·headDim] holding `past` earlier positions.
 */
export interface KvAttentionDims {
  B: number;
  Tq: number;
  past: number;
  cap: number;
  nHead: number;
  nKvHead: number;
  headDim: number;
  scale: number;
}

/** One sequence of attentionCachedRagged: its single-row cache and where its new rows sit. */
export interface RaggedKvSequence {
  k: Float32Array;
  v: Float32Array;
  cap: number;
  past: number;
  start: number;
  offset: number;
  Tq: number;
}

export interface RaggedKvDims {
  nHead: number;
  nKvHead: number;
  headDim: number;
  scale: number;
}

export interface AdamWHyper {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
  /** 1-based step count, for bias correction. */
  step: number;
}

/** Opaque state from attentionForward to attentionBackward of the same backend. */
export type AttentionSaved = unknown;

/** silu: x·σ(x), the SwiGLU MLP's gate (Llama). */
export type UnaryOp = 'exp' | 'log' | 'relu' | 'gelu' | 'silu' | 'tanh' | 'neg' | 'sqrt';
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div';

export interface Backend {
  readonly name: string;

  gemm(args: GemmArgs): void;

  /** out = a ∘ b with NumPy broadcasting; shapes already aligned to out's rank. */
  binary(op: BinaryOp, a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], out: Float32Array, outShape: number[]): void;
  /** Sum `src` (shape srcShape) down to `dst` (shape dstShape, same rank, 1 where reduced), adding into dst. */
  reduceSumTo(src: Float32Array, srcShape: number[], dst: Float32Array, dstShape: number[]): void;
  unary(op: UnaryOp, x: Float32Array, out: Float32Array): void;
  /**
   * dx += dy · f'(x) (given x and y = f(x)); with accumulate false, dx = dy · f'(x)
   * (a gradient's first contribution, written over whatever dx held).
   */
  unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array, accumulate: boolean): void;

  softmaxForward(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  softmaxBackward(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void;

  layerNormForward(x: Float32Array, weight: Float32Array | null, bias: Float32Array | null, out: Float32Array, mean: Float32Array, rstd: Float32Array, rows: number, cols: number, eps: number): void;
  /** dx += (or, accumulate false, =) the input gradient; dWeight and dBias always accumulate. */
  layerNormBackward(x: Float32Array, weight: Float32Array | null, mean: Float32Array, rstd: Float32Array, dy: Float32Array, dx: Float32Array, dWeight: Float32Array | null, dBias: Float32Array | null, rows: number, cols: number, accumulate: boolean): void;

  /** RMSNorm: out = w·x/√(mean(x²) + eps) per row; rstd receives each row's 1/√(mean(x²) + eps). */
  rmsNormForward(x: Float32Array, weight: Float32Array | null, out: Float32Array, rstd: Float32Array, rows: number, cols: number, eps: number): void;
  /** dx += (or, accumulate false, =) the input gradient; dWeight always accumulates. */
  rmsNormBackward(x: Float32Array, weight: Float32Array | null, rstd: Float32Array, dy: Float32Array, dx: Float32Array, dWeight: Float32Array | null, rows: number, cols: number, accumulate: boolean): void;

  embeddingForward(weight: Float32Array, ids: Int32Array, out: Float32Array, dim: number): void;
  embeddingBackward(dOut: Float32Array, ids: Int32Array, dWeight: Float32Array, dim: number): void;

  /**
   * Fused scaled-dot-product attention; out is [B, Tq, nHead·headDim]
   * contiguous. A query that sees no key outputs zeros. Returns whatever the
   * backend keeps for the backward pass: the js backend keeps the Tq×Tk
   * weights, a fused backend only each row's log-sum-exp and recomputes them.
   */
  attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, d: AttentionDims): AttentionSaved;
  /** dq, dk, dv += their gradients (accumulate), or = them. */
  attentionBackward(saved: AttentionSaved, q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, dOut: Float32Array, dq: Float32Array, dk: Float32Array, dv: Float32Array, d: AttentionDims, accumulate: boolean): void;

  /**
   * Attention of new queries against a KV cache (generation): query t of row b
   * is at slot past + t and sees slots start[b] … past + t (left padding before
   * start[b] is masked out).
   */
  attentionCached(q: Float32Array, kCache: Float32Array, vCache: Float32Array, out: Float32Array, start: Int32Array, d: KvAttentionDims): void;

  /**
   * attentionCached for several sequences with caches of their own (a
   * continuous batch) in one call, so their heads share the threads: q and out
   * are [rows, C] with sequence s at rows offset … offset + Tq − 1.
   */
  attentionCachedRagged(q: Float32Array, out: Float32Array, seqs: readonly RaggedKvSequence[], d: RaggedKvDims): void;

  /** out[rows, N] = (x[rows, K]·Wᵀ)∘scale + bias, W int8 [N, K] with one scale per output row. */
  linearInt8(x: Float32Array, rows: number, K: number, w: Int8Array, scale: Float32Array, bias: Float32Array | null, out: Float32Array, N: number): void;

  /** out[rows, N] = x[rows, K]·Wᵀ + bias, W block-quantized in ggml's layouts (q8_0, q4_0, q4_k, q6_k), read as stored. */
  linearQuantized(x: Float32Array, rows: number, w: QuantizedMatrix, bias: Float32Array | null, out: Float32Array): void;

  /**
   * Fused log-softmax + negative log-likelihood. Writes each row's log-sum-exp
   * into `lse` and returns the summed loss and the number of counted rows
   * (rows whose target equals ignoreIndex are skipped).
   */
  crossEntropyForward(logits: Float32Array, targets: Int32Array, lse: Float32Array, rows: number, vocab: number, ignoreIndex: number): { sum: number; count: number };
  /** dLogits += scale · (softmax − onehot(target)) for counted rows; accumulate false overwrites (ignored rows become 0). */
  crossEntropyBackward(logits: Float32Array, targets: Int32Array, lse: Float32Array, dLogits: Float32Array, rows: number, vocab: number, ignoreIndex: number, scale: number, accumulate: boolean): void;

  /**
   * mask[i] = 0 with probability p, else 1/(1−p); out = x·mask. The decisions
   * come from a counter-based hash of (seed, i) (js/dropout.ts), so every
   * backend draws the same mask from the same seed.
   */
  dropoutForward(x: Float32Array, out: Float32Array, mask: Float32Array, p: number, seed: number): void;
  /** dx += dOut·mask (accumulate), or dx = dOut·mask. */
  dropoutBackward(dOut: Float32Array, mask: Float32Array, dx: Float32Array, accumulate: boolean): void;

  /** One decoupled-weight-decay Adam step on one parameter tensor, in place. */
  adamwStep(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, h: AdamWHyper): void;
  /** Σ g² over one gradient tensor (double precision accumulation). */
  sumSquares(x: Float32Array): number;
  scaleInPlace(x: Float32Array, s: number): void;
}
