import type { DecoderHeadWeights, DecoderLayerWeights, DecoderStepCache } from './decoder_step.js';
import type { QuantizedMatrix } from './quantized_matrix.js';
import type { RowPanels } from './row_panels.js';
import type { DeviceMemory, Storage } from './storage.js';

/**
 * The Backend is the only layer that loops over numbers. Ops (src/tensor)
 * decide shapes and record gradients; a backend fills the storage they hand it.
 *
 * The `js` backend is the readable reference that runs everywhere (Node and
 * browsers). A faster backend (native SIMD, WebGPU) implements the same
 * entry points and is tested against `js`. The fused entry points —
 * attention, cross-entropy, AdamW — exist so that such a backend can avoid
 * materialising intermediates; `js` implements them plainly.
 *
 * Storage contract (storage.ts). Every float buffer an entry point takes is
 * a Storage: the backend's own kind of memory, `F`.
 *   - Host backends (js, native) are Backend<Float32Array>: tensors hold
 *     plain typed arrays, exactly as before — no copies, no indirection, and
 *     `tensor.data` / `tensor.grad` index them directly. They have no
 *     `device` member.
 *   - A device backend (webgpu) is Backend<DeviceArray>: it allocates,
 *     copies and frees through its `device` member, queues every entry point
 *     without waiting, and gives values back only through the asynchronous
 *     `device.read` (`await tensor.read()`). Reading `tensor.data` of a
 *     device tensor throws DeviceValuesError naming the way out.
 *   - Nothing an entry point returns is a value computed on the device: the
 *     loss is written into a one-element storage (crossEntropyForward), the
 *     squared gradient norm too (sumSquares). So a training step queues its
 *     whole forward, backward, clip and AdamW, and the only waits are where a
 *     person or a program needs a number: the loss at a log step, the logits
 *     row being sampled, a checkpoint being saved, an evaluation.
 *   - Small host inputs (token ids, targets, padding flags, int8 weights) stay
 *     typed arrays; a device backend uploads them itself.
 * Entry points a backend cannot run throw "not supported on NAME: X".
 */
/** C = alpha·op(A)·op(B) (+ C when accumulate) (+ bias), for `batch` independent matrices, then the epilogue. */
export interface GemmArgs<F = Storage> {
  transA: boolean;
  transB: boolean;
  M: number;
  N: number;
  K: number;
  a: F;
  aOffset: number;
  /** Row stride of A as stored (elements between consecutive stored rows). */
  lda: number;
  b: F;
  bOffset: number;
  ldb: number;
  c: F;
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
  bias?: F | null;
  /**
   * Mixed precision: A and B rounded to bfloat16 (js/bf16.ts), products summed
   * in FP32 (wider in js); the bias and C stay FP32.
   */
  bf16?: boolean;
  /** What is done to each element of C as it is stored, after the bias (absent: nothing). */
  epilogue?: GemmEpilogue<F> | null;
}

/** Activations a GEMM can apply as it stores C (a feed-forward's up projection). */
export type EpilogueActivation = Extract<UnaryOp, 'relu' | 'gelu' | 'silu'>;

/**
 * The last steps of a product, done as each element of C is stored instead of
 * as passes of their own over C:
 *
 *   C = act(alpha·op(A)·op(B) (+ C) (+ bias)) (+ addend)
 *
 * A feed-forward's up projection stores GELU(x·Wᵀ + b), and a sublayer's
 * output projection stores skip + y·Wᵀ + b, its residual connection. The
 * activation is the js backend's unary op of the same name; the addend is a
 * matrix shaped like C, which must not overlap C.
 */
export interface GemmEpilogue<F = Storage> {
  activation?: EpilogueActivation | null;
  addend?: GemmAddend<F> | null;
}

/** The epilogue of a decode-time product (int8, block-quantized): out = act(x·Wᵀ + bias) (+ addend), the addend [rows, N] as out is laid out. */
export interface ProductEpilogue<F = Storage> {
  activation?: EpilogueActivation | null;
  addend?: F | null;
}

/** Element (r, c) of batch entry z is at data[offset + z·stride + r·ld + c]. */
export interface GemmAddend<F = Storage> {
  data: F;
  offset: number;
  ld: number;
  stride: number;
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
  /**
   * Mixed precision: the products q·kᵀ and p·v (and the backward pass's dP = dO·vᵀ, dq = dS·k,
   * dk = dSᵀ·q, dv = pᵀ·dO) round both operands to bfloat16 and sum in FP32; the softmax, its
   * log-sum-exp and dS stay FP32. Set by the op inside withPrecision('bf16'). Backends without
   * a bf16 path (webgpu) compute in FP32.
   */
  bf16?: boolean;
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

/** The keys and values of the new positions, [B, Tq, nKvHead·headDim] each, for attentionCached to store. */
export interface FreshKeysValues<F = Storage> {
  k: F;
  v: F;
}

/** One sequence of attentionCachedRagged: its single-row cache and where its new rows sit. */
export interface RaggedKvSequence<F = Storage> {
  k: F;
  v: F;
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

/** One sequence of attentionPaged: its block table, its filled slots, and where its new rows sit. */
export interface PagedKvSequence {
  /** Block ids, in slot order (slot t is in table[t / blockTokens]). */
  table: ArrayLike<number>;
  /** Slots already filled before this call's queries (their keys and values are in the pool). */
  past: number;
  /** First row of this sequence in q and out. */
  offset: number;
  /** Its new queries, at slots past … past + Tq − 1 (their keys and values already written). */
  Tq: number;
}

export interface PagedKvDims extends RaggedKvDims {
  /** Token slots per block of the pool. */
  blockTokens: number;
}

/**
 * Shapes for rotary position embedding: x [B, T, nHead·headDim]; channel pair
 * i of each head is (2i, 2i+1) in the interleaved layout, (i, i + headDim/2)
 * in the half layout (tensor/ops/rope.ts).
 */
export interface RopeDims {
  B: number;
  T: number;
  nHead: number;
  headDim: number;
  layout: 'interleaved' | 'half';
}

/** Where copyRows reads and writes: `rows` rows of `cols` values, consecutive rows `stride` apart from `offset`. */
export interface RowsLayout {
  rows: number;
  cols: number;
  srcOffset: number;
  srcStride: number;
  dstOffset: number;
  dstStride: number;
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

export interface Backend<F = Storage> {
  readonly name: string;

  gemm(args: GemmArgs<F>): void;

  /** out = a ∘ b with NumPy broadcasting; shapes already aligned to out's rank. */
  binary(op: BinaryOp, a: F, aShape: number[], b: F, bShape: number[], out: F, outShape: number[]): void;
  /** Sum `src` (shape srcShape) down to `dst` (shape dstShape, same rank, 1 where reduced), adding into dst. */
  reduceSumTo(src: F, srcShape: number[], dst: F, dstShape: number[]): void;
  unary(op: UnaryOp, x: F, out: F): void;
  /**
   * dx += dy · f'(x) (given x and y = f(x)); with accumulate false, dx = dy · f'(x)
   * (a gradient's first contribution, written over whatever dx held).
   */
  unaryBackward(op: UnaryOp, x: F, y: F, dy: F, dx: F, accumulate: boolean): void;

  /** SwiGLU's product in one pass: out = silu(gate) ∘ up (silu(x) = x·σ(x)), with no silu(gate) array. */
  swigluForward(gate: F, up: F, out: F): void;
  /**
   * dGate (+)= dy ∘ up ∘ silu'(gate) and dUp (+)= dy ∘ silu(gate): added when
   * its accumulate flag is set, written over otherwise; a null one is skipped
   * (its input wants no gradient).
   */
  swigluBackward(gate: F, up: F, dy: F, dGate: F | null, dUp: F | null, accGate: boolean, accUp: boolean): void;

  /**
   * RoPE's rotation: out (+)= R(direction·angle)·x for every channel pair of
   * every head. cos and sin are [T, headDim/2] (positions shared by the batch)
   * or [B·T, headDim/2] (each row its own), host tables; direction −1 is the
   * inverse rotation (the backward pass).
   */
  rope(x: F, out: F, cos: Float32Array, sin: Float32Array, d: RopeDims, direction: 1 | -1, accumulate: boolean): void;

  softmaxForward(x: F, out: F, rows: number, cols: number): void;
  softmaxBackward(y: F, dy: F, dx: F, rows: number, cols: number): void;

  layerNormForward(x: F, weight: F | null, bias: F | null, out: F, mean: F, rstd: F, rows: number, cols: number, eps: number): void;
  /** dx += (or, accumulate false, =) the input gradient; dWeight and dBias always accumulate. */
  layerNormBackward(x: F, weight: F | null, mean: F, rstd: F, dy: F, dx: F, dWeight: F | null, dBias: F | null, rows: number, cols: number, accumulate: boolean): void;

  /** RMSNorm: out = w·x/√(mean(x²) + eps) per row; rstd receives each row's 1/√(mean(x²) + eps). */
  rmsNormForward(x: F, weight: F | null, out: F, rstd: F, rows: number, cols: number, eps: number): void;
  /** dx += (or, accumulate false, =) the input gradient; dWeight always accumulates. */
  rmsNormBackward(x: F, weight: F | null, rstd: F, dy: F, dx: F, dWeight: F | null, rows: number, cols: number, accumulate: boolean): void;

  /**
   * Max over positions: x [B, T, C] → out [B, C]; winner [B, C] receives the
   * position that won each channel (the first on ties), as a float.
   */
  maxPoolForward(x: F, out: F, winner: F, B: number, T: number, C: number): void;
  /** dx[b, winner[b, c], c] += dy[b, c]. */
  maxPoolBackward(dy: F, winner: F, dx: F, B: number, T: number, C: number): void;

  /** Each row of D values scaled to unit length: y = x / max(‖x‖, 1e-12); norms receives each row's divisor. */
  l2NormalizeForward(x: F, y: F, norms: F, rows: number, D: number): void;
  /** dx += (dy − y·(y·dy)) / norm, row by row. */
  l2NormalizeBackward(y: F, norms: F, dy: F, dx: F, rows: number, D: number): void;

  /** dst (+)= src [shape] with its axes permuted (dst's axis i is src's axis perm[i]), contiguous: transpose. */
  permute(src: F, shape: readonly number[], perm: readonly number[], dst: F, accumulate: boolean): void;
  /** A strided block copy (+= when accumulate): slice and concat along an axis, and their gradients. */
  copyRows(src: F, dst: F, layout: RowsLayout, accumulate: boolean): void;

  embeddingForward(weight: F, ids: Int32Array, out: F, dim: number): void;
  embeddingBackward(dOut: F, ids: Int32Array, dWeight: F, dim: number): void;
  /**
   * out[r] = weight[ids[r]] for r < n, the ids being floats in this backend's
   * storage (as argmaxRows writes them): greedy decoding on a device feeds a
   * step's picks to the next step without reading them back. Each id must be
   * a row of weight.
   */
  embeddingForwardStored(weight: F, ids: F, n: number, out: F, dim: number): void;
  /** As embeddingForwardStored for a block-quantized table (a GGUF token embedding): each row dequantized as it is read. */
  embeddingQuantizedStored(table: QuantizedMatrix, ids: F, n: number, out: F): void;

  /**
   * Fused scaled-dot-product attention; out is [B, Tq, nHead·headDim]
   * contiguous. A query that sees no key outputs zeros. Returns whatever the
   * backend keeps for the backward pass: the js backend keeps the Tq×Tk
   * weights, a fused backend only each row's log-sum-exp and recomputes them.
   */
  attentionForward(q: F, k: F, v: F, out: F, d: AttentionDims): AttentionSaved;
  /** dq, dk, dv += their gradients (accumulate), or = them. */
  attentionBackward(saved: AttentionSaved, q: F, k: F, v: F, out: F, dOut: F, dq: F, dk: F, dv: F, d: AttentionDims, accumulate: boolean): void;
  /**
   * Give back what attentionForward kept for a backward pass that will not
   * run (a pass without gradients): host backends leave it to the garbage
   * collector; a device returns its buffers to the pool, which it could
   * not otherwise reuse.
   */
  attentionDiscard(saved: AttentionSaved): void;

  /**
   * Attention of new queries against a KV cache (generation): query t of row b
   * is at slot past + t and sees slots start[b] … past + t (left padding before
   * start[b] is masked out). Every element of out is written (zeros for a
   * query that sees no slot), so out may start with any values. Given
   * `fresh`, the new positions' keys and values are first stored in the
   * caches at slots past … past + Tq − 1 (a GPU does it in the same kernel:
   * no copies of their own).
   */
  attentionCached(q: F, kCache: F, vCache: F, out: F, start: Int32Array, d: KvAttentionDims, fresh?: FreshKeysValues<F> | null): void;

  /**
   * attentionCached for several sequences with caches of their own (a
   * continuous batch) in one call, so their heads share the threads: q and out
   * are [rows, C] with sequence s at rows offset … offset + Tq − 1. Given
   * `fresh` ([rows, nKvHead·headDim] each, rows as q's), each sequence's new
   * keys and values are stored in its cache first, as attentionCached does.
   */
  attentionCachedRagged(q: F, out: F, seqs: readonly RaggedKvSequence<F>[], d: RaggedKvDims, fresh?: FreshKeysValues<F> | null): void;

  /**
   * attentionCachedRagged with every sequence's keys and values in one pool
   * of blocks (a paged KV cache, generate/paged_kv/): kPool and vPool are one
   * layer's [blocks, blockTokens, nKvHead·headDim]; query t of a sequence
   * sees its slots 0 … past + t, read through its block table. Given `fresh`
   * ([rows, nKvHead·headDim] each, rows as q's), each new row's key and value
   * are stored in its slot (past + t) first, as attentionCached does.
   */
  attentionPaged(q: F, out: F, kPool: F, vPool: F, seqs: readonly PagedKvSequence[], d: PagedKvDims, fresh?: FreshKeysValues<F> | null): void;

  /**
   * Optional: a zeroed host array of `length` floats for a large buffer that
   * lives long and fills gradually (the paged KV pool), committed by the
   * operating system in huge pages where it can. Without it callers use
   * `new Float32Array(length)`, whose pages are committed 4 KB at a time on
   * first write — a page fault each, which on a virtual machine costs more
   * than the write (docs/paged_kv.md).
   */
  hugePageArray?(length: number): Float32Array;

  /**
   * out[r] = the index of the largest value of row r of x [rows, cols] (the
   * first on ties), as a float: greedy decoding picks its tokens where the
   * logits are, and a device backend reads back only these numbers.
   */
  argmaxRows(x: F, rows: number, cols: number, out: F): void;

  /**
   * out[rows, N] = (x[rows, K]·Wᵀ)∘scale + bias, W int8 [N, K] with one scale per output row;
   * `epilogue`: an activation and an addend (rows × N, like out), applied as out is stored (see GemmEpilogue).
   */
  linearInt8(x: F, rows: number, K: number, w: Int8Array, scale: Float32Array, bias: F | null, out: F, N: number, epilogue?: ProductEpilogue<F> | null): void;

  /**
   * Optional: out[rows, N] = x[rows, K]·Wᵀ + bias with W fp32 in column panels
   * (backend/panels.ts, packPanels): a few rows cost about one (decoding, a
   * speculative verifier's k + 1). Host backends only.
   */
  linearPanels?(x: F, rows: number, K: number, panels: Float32Array, bias: F | null, out: F, N: number): void;

  /**
   * Optional: the min(k, n) rows of `p` (backend/row_panels.ts) with the
   * largest dot product with q, best first (equal scores: lower row first),
   * into rows/scores; returns how many. The selection is fused into the scan
   * (retrieval's dense search). Backends without it: a GEMV and a selection.
   */
  topRows?(q: Float32Array, p: RowPanels, k: number, rows: Int32Array, scores: Float32Array): number;

  /** Optional: as topRows over `count` given rows of m [· × width] (row-major fp32): a two-stage search's rerank. */
  topRowsOf?(q: Float32Array, m: Float32Array, width: number, candidates: Int32Array, count: number, k: number, rows: Int32Array, scores: Float32Array): number;

  /**
   * out[rows, N] = x[rows, K]·Wᵀ + bias, W block-quantized in ggml's layouts (q8_0, q4_0, q4_k, q6_k), read as stored;
   * `epilogue`: an activation and an addend (rows × N, like out), applied as out is stored (see GemmEpilogue).
   */
  linearQuantized(x: F, rows: number, w: QuantizedMatrix, bias: F | null, out: F, epilogue?: ProductEpilogue<F> | null): void;

  /**
   * Fused log-softmax + negative log-likelihood. Writes each row's log-sum-exp
   * into `lse` and scale · (the summed loss of the counted rows) into loss[0]
   * (rows whose target equals ignoreIndex are skipped; the caller, who knows
   * the targets, passes 1/count to get the mean). The loss stays where the
   * backend keeps its values: a device backend does not wait to return it.
   * With `smoothing` ε > 0 the target is smoothed (label smoothing): a row's
   * loss is −Σ q·log softmax with q = (1 − ε)·onehot(target) + ε/V, that is
   * (1 − ε)·(lse − z_t) + ε·(lse − mean z).
   */
  crossEntropyForward(logits: F, targets: Int32Array, lse: F, loss: F, rows: number, vocab: number, ignoreIndex: number, scale: number, smoothing?: number): void;
  /**
   * dLogits += dLoss[0] · scale · (softmax − q) for counted rows, q the
   * (smoothed) target; accumulate false overwrites (ignored rows become 0).
   * dLoss is the loss's own one-element gradient, read by the kernel where it lies.
   */
  crossEntropyBackward(logits: F, targets: Int32Array, lse: F, dLoss: F, dLogits: F, rows: number, vocab: number, ignoreIndex: number, scale: number, accumulate: boolean, smoothing?: number): void;

  /**
   * mask[i] = 0 with probability p, else 1/(1−p); out = x·mask. The decisions
   * come from a counter-based hash of (seed, i) (js/dropout.ts), so every
   * backend draws the same mask from the same seed.
   */
  dropoutForward(x: F, out: F, mask: F, p: number, seed: number): void;
  /** dx += dOut·mask (accumulate), or dx = dOut·mask. */
  dropoutBackward(dOut: F, mask: F, dx: F, accumulate: boolean): void;

  /** One decoupled-weight-decay Adam step on one parameter tensor, in place. */
  adamwStep(param: F, grad: F, m: F, v: F, h: AdamWHyper): void;
  /**
   * out[0] = Σ over every array of Σ x² (gradient clipping's squared global
   * norm; double precision accumulation on the host). One call for all the
   * gradients, and the result stays with the backend until someone reads it.
   */
  sumSquares(xs: readonly F[], out: F): void;
  scaleInPlace(x: F, s: number): void;
  /**
   * Gradient clipping with the norm left where it is (a device step that reads
   * nothing back): from stats[0] = Σg² (sumSquares), stats[1] = the norm and
   * stats[2] = the factor, maxNorm/(norm + 1e-6) when norm > maxNorm and 1
   * otherwise (optim/clip.ts's rule), and every gradient multiplied by it in place.
   */
  clipByNorm(grads: readonly F[], stats: F, maxNorm: number): void;

  /**
   * One Llama-family decoder layer for one new token (decoder_step.ts): x [C]
   * updated in place, the token's key and value written to the cache. Host
   * backends only; where absent, decoding runs the layer op by op.
   */
  decoderLayerStep?(layer: DecoderLayerWeights, x: F, kv: DecoderStepCache<F>, cos: Float32Array, sin: Float32Array): void;

  /**
   * decoderLayerStep for layers[0], layers[1], … in turn (layer l's cache
   * kvs[l]; every cache at the same slot), in one call: the native backend
   * hands the whole stack to its thread pool once a token instead of once a
   * layer. Backends with decoderLayerStep have it. With `head`, the same call
   * then writes head.logits [vocab] from the final x (the native backend: in
   * the same pool job, so a token's whole forward is one hand-off).
   */
  decoderLayersStep?(layers: readonly DecoderLayerWeights[], x: F, kvs: readonly DecoderStepCache<F>[], cos: Float32Array, sin: Float32Array, head?: { weights: DecoderHeadWeights; logits: F }): void;

  /**
   * The memory of a device backend (absent on host backends, whose storage is
   * a Float32Array the tensor layer manages itself: see storage.ts).
   */
  readonly device?: DeviceMemory<F>;
}
