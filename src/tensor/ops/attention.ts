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
  const out = Tensor.zeros(q.shape);
  const be = backend();
  const saved = be.attentionForward(q.data, k.data, v.data, out.data, dims);
  return record(out, [q, k, v], 'attention', () => {
    be.attentionBackward(saved, q.data, k.data, v.data, out.data, out.grad!, q.ensureGrad(), k.ensureGrad(), v.ensureGrad(), dims);
  });
}
