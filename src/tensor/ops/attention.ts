import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

export interface AttentionOptions {
  /** Each position may only look at itself and earlier positions. */
  causal: boolean;
  /** Defaults to 1/√headDim, which keeps the scores' variance near 1. */
  scale?: number;
}

/**
 * softmax(q·kᵀ/√d)·v for every head, as one fused op. q, k, v are [B, T, C]
 * with C = nHead·headDim. The same result can be composed from matmul,
 * softmax and a mask (see test/attention.test.ts); fusing lets a backend skip
 * storing the T×T scores.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, nHead: number, opts: AttentionOptions): Tensor {
  if (q.rank !== 3 || q.shape.join() !== k.shape.join() || q.shape.join() !== v.shape.join()) {
    throw new Error(`attention expects q, k, v of equal shape [B, T, C]; got [${q.shape}], [${k.shape}], [${v.shape}]`);
  }
  const [B, T, C] = q.shape as [number, number, number];
  if (C % nHead !== 0) throw new Error(`attention: ${C} channels do not split into ${nHead} heads`);
  const headDim = C / nHead;
  const dims = { B, T, nHead, headDim, causal: opts.causal, scale: opts.scale ?? 1 / Math.sqrt(headDim) };
  const out = Tensor.empty(q.shape);
  const be = backend();
  const saved = be.attentionForward(q.data, k.data, v.data, out.data, dims);
  return record(out, [q, k, v], 'attention', () => {
    // The kernel may overwrite fresh gradients only when q, k and v are three tensors (not x, x, x) without one yet.
    const fresh = q !== k && k !== v && q !== v && !q.grad && !k.grad && !v.grad;
    const [dq, dk, dv] = [q, k, v].map((t) => (fresh ? t.gradSink().grad : t.ensureGrad())) as [Float32Array, Float32Array, Float32Array];
    be.attentionBackward(saved, q.data, k.data, v.data, out.data, out.grad!, dq, dk, dv, dims, !fresh);
  });
}

/**
 * The same attention read in place from one projection: qkv [B, T, 3C] holds
 * each position's query, key and value side by side, as GPT-2's c_attn makes
 * them. Equal to splitting qkv into q, k, v and calling
 * scaledDotProductAttention, without copying the three parts out (and their
 * gradients back in): the kernel reads them with a row stride of 3C.
 */
export function packedAttention(qkv: Tensor, nHead: number, opts: AttentionOptions): Tensor {
  const [B, T, C3] = qkv.shape as [number, number, number];
  if (qkv.rank !== 3 || C3 % (3 * nHead) !== 0) throw new Error(`packed attention expects [B, T, 3·C] with C a multiple of ${nHead} heads; got [${qkv.shape}]`);
  const C = C3 / 3;
  const headDim = C / nHead;
  const dims = { B, T, nHead, headDim, causal: opts.causal, scale: opts.scale ?? 1 / Math.sqrt(headDim), stride: C3 };
  const parts = (a: Float32Array) => [a, a.subarray(C), a.subarray(2 * C)] as const; // q, k, v: the same rows, offset
  const out = Tensor.empty([B, T, C]);
  const be = backend();
  const saved = be.attentionForward(...parts(qkv.data), out.data, dims);
  return record(out, [qkv], 'attention', () => {
    const g = qkv.gradSink();
    be.attentionBackward(saved, ...parts(qkv.data), out.data, out.grad!, ...parts(g.grad), dims, g.accumulate);
  });
}
