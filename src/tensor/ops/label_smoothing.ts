import type { Tensor } from '../tensor.js';
import { crossEntropy } from './cross_entropy.js';

export interface LabelSmoothingOptions {
  /** ε: the share of the target's probability spread evenly over the whole vocabulary. */
  smoothing: number;
  /** Targets equal to this are skipped (padding). Default −1. */
  ignoreIndex?: number;
}

/**
 * Cross-entropy against a smoothed target (Szegedy et al. 2016; the paper uses
 * ε = 0.1): q = (1 − ε)·onehot(target) + ε/V, loss = −Σ q·log softmax(logits),
 * averaged over the rows that are not ignored. The model is never pushed to
 * infinite confidence, which the paper found "hurts perplexity, but improves
 * accuracy and BLEU". With ε = 0 it is plain cross-entropy.
 *
 * Per row −Σ q·log p = (1 − ε)·(lse − z_t) + ε·(lse − mean z), and the
 * gradient is softmax(logits) − q: the fused cross-entropy of every backend
 * computes both (js/cross_entropy.ts is the reference; the webgpu kernel
 * keeps the loss on the device), so this is crossEntropy with `smoothing`.
 */
export function labelSmoothedCrossEntropy(logits: Tensor, targets: Int32Array, opts: LabelSmoothingOptions): Tensor {
  return crossEntropy(logits, targets, { ignoreIndex: opts.ignoreIndex ?? -1, smoothing: opts.smoothing });
}

/** log Σ exp(z), computed after subtracting the largest score so that no exp overflows. */
export function logSumExp(z: Float32Array): number {
  let max = -Infinity;
  for (const x of z) if (x > max) max = x;
  let sum = 0;
  for (let v = 0; v < z.length; v++) sum += Math.exp(z[v]! - max);
  return max + Math.log(sum);
}
