import { backend } from '../backend/index.js';
import { gemmArgs, mat, matT } from '../backend/gemm_args.js';
import { isHost } from '../backend/storage.js';
import { isGradEnabled, record } from './autograd.js';
import { giveBack, takeUninitialized, takeZeroed } from './buffer_pool.js';
import { matmulPrecision } from './precision.js';
import { Tensor } from './tensor.js';

export interface ChunkedCrossEntropyOptions {
  /** Targets equal to this are skipped (padding), as in crossEntropy. Default −1. */
  ignoreIndex?: number;
  /** Rows of logits alive at once. Default 512. */
  chunkRows?: number;
}

/** The default chunk: 512 rows of GPT-2's 50 257 scores is 103 MB, against 823 MB for 4×1024 rows. */
export const DEFAULT_HEAD_CHUNK_ROWS = 512;

/**
 * The output head and its loss in one op, a chunk of rows at a time:
 * mean cross-entropy of softmax(h·Wᵀ + b) against `targets`, for final
 * hidden states h [..., C] and a head W [V, C] (bias [V] or none). The same
 * number as crossEntropy(linear(h, W, b), targets), without ever holding the
 * [rows, V] logits: for GPT-2 at 4×1024 tokens those and their gradient are
 * 1.6 GB, more than the model, its gradients and AdamW's moments together —
 * what is left once the blocks are recomputed (recompute.ts).
 *
 * Per chunk of `chunkRows` rows: logits = h_c·Wᵀ + b, the fused log-softmax
 * loss (the backend's crossEntropyForward), and — when a gradient is wanted —
 * dlogits = softmax − onehot at once, then dh_c = dlogits·W and
 * dW += dlogitsᵀ·h_c (db += Σ dlogits), so the chunk's scores are dropped
 * before the next chunk is scored.
 *
 * Why the gradients are computed in the forward pass rather than by scoring
 * each chunk again in the backward pass: the loss is a scalar, so its
 * upstream gradient is one number g and the true gradients are g times the
 * ones computed here (the backward pass only scales and adds them). Scoring
 * again would cost a third more of the head's arithmetic (a fourth product
 * of N·V·C per step, about a tenth of GPT-2's whole step); keeping dW costs
 * one buffer the size of W (154 MB for GPT-2) and dh one the size of h, from
 * the forward pass to the backward. The price: a forward pass with
 * gradients on that is never followed by backward() did the work for nothing.
 *
 * All three products run through the backend's GEMM in the current matrix
 * precision (bf16 inside withPrecision('bf16'), as linear() does). Host
 * backends only (the loss is summed over chunks on the host); DecoderLM
 * keeps the plain head on a device backend.
 */
export function chunkedCrossEntropy(h: Tensor, weight: Tensor, bias: Tensor | null, targets: Int32Array, opts: ChunkedCrossEntropyOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -1;
  const chunkRows = opts.chunkRows ?? DEFAULT_HEAD_CHUNK_ROWS;
  const [V, C] = weight.shape as [number, number];
  if (weight.rank !== 2 || h.shape[h.rank - 1] !== C) throw new Error(`chunkedCrossEntropy: hidden states [${h.shape}] do not match the head [${weight.shape}]`);
  if (bias && bias.size !== V) throw new Error(`chunkedCrossEntropy: bias of ${bias.size} for a head of ${V} rows`);
  if (!(Number.isInteger(chunkRows) && chunkRows > 0)) throw new Error(`chunkedCrossEntropy: chunkRows must be a positive integer, got ${chunkRows}`);
  if (!isHost(h.storage) || !isHost(weight.storage)) throw new Error(`chunkedCrossEntropy runs on host backends (js, native), not ${backend().name}`);
  const rows = h.size / C;
  if (targets.length !== rows) throw new Error(`chunkedCrossEntropy: ${targets.length} targets for ${rows} rows`);
  let count = 0;
  for (const t of targets) {
    if (t === ignoreIndex) continue;
    if (t < 0 || t >= V) throw new Error(`chunkedCrossEntropy: target ${t} outside vocabulary of ${V}`);
    count++;
  }
  const scale = count > 0 ? 1 / count : 0;
  const be = backend();
  const bf16 = matmulPrecision() === 'bf16';
  const H = h.data;
  const W = weight.data;
  const wantGrad = isGradEnabled() && count > 0 && (h.requiresGrad || weight.requiresGrad || Boolean(bias?.requiresGrad));

  const chunk = Math.min(chunkRows, rows);
  const logits = takeUninitialized(chunk * V);
  const dlogits = wantGrad ? takeUninitialized(chunk * V) : null;
  const lse = takeUninitialized(chunk);
  const part = new Float32Array(1);
  const one = Float32Array.of(1);
  // The gradients for an upstream gradient of 1, gathered chunk by chunk.
  const dh = wantGrad && h.requiresGrad ? takeUninitialized(rows * C) : null;
  const dW = wantGrad && weight.requiresGrad ? takeUninitialized(V * C) : null;
  const db = wantGrad && bias?.requiresGrad ? takeZeroed(V) : null;

  let loss = 0;
  for (let r0 = 0; r0 < rows; r0 += chunk) {
    const n = Math.min(chunk, rows - r0);
    const hc = H.subarray(r0 * C, (r0 + n) * C);
    const tc = targets.subarray(r0, r0 + n);
    // logits = h_c·Wᵀ + b
    be.gemm(gemmArgs({ M: n, N: V, K: C }, mat(logits, V), mat(hc, C), matT(W, C), { bias: bias?.data ?? null, bf16 }));
    be.crossEntropyForward(logits, tc, lse, part, n, V, ignoreIndex, scale);
    loss += part[0]!;
    if (!dlogits) continue;
    // dlogits = (softmax − onehot) / count; ignored rows are 0.
    be.crossEntropyBackward(logits, tc, lse, one, dlogits, n, V, ignoreIndex, scale, false);
    // dh_c = dlogits·W
    if (dh) be.gemm(gemmArgs({ M: n, N: C, K: V }, mat(dh.subarray(r0 * C, (r0 + n) * C), C), mat(dlogits, V), mat(W, C), { bf16 }));
    // dW (+)= dlogitsᵀ·h_c
    if (dW) be.gemm(gemmArgs({ M: V, N: C, K: n }, mat(dW, C), matT(dlogits, V), mat(hc, C), { accumulate: r0 > 0, bf16 }));
    if (db) be.reduceSumTo(dlogits.subarray(0, n * V), [n, V], db, [1, V]);
  }
  giveBack(logits);
  if (dlogits) giveBack(dlogits);
  giveBack(lse);

  const out = Tensor.empty([]);
  out.data[0] = loss;
  return record(out, bias ? [h, weight, bias] : [h, weight], 'chunkedCrossEntropy', () => {
    if (!wantGrad) return;
    const g = out.grad![0]!;
    if (dh) addScaled(h, dh, g);
    if (dW) addScaled(weight, dW, g);
    if (db) addScaled(bias!, db, g);
  });
}

/** t.grad (+)= g·d, d given back afterwards (or handed over as t's gradient when that is the same thing). */
function addScaled(t: Tensor, d: Float32Array, g: number): void {
  if (!t.gradStorage && g === 1) {
    t.grad = d;
    return;
  }
  const sink = t.gradSink();
  const grad = sink.grad as Float32Array;
  if (sink.accumulate) for (let i = 0; i < d.length; i++) grad[i] = grad[i]! + g * d[i]!;
  else for (let i = 0; i < d.length; i++) grad[i] = g * d[i]!;
  giveBack(d);
}
