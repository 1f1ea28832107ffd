import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

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
 * The gradient for a row is softmax(logits) − q: forward and backward share the
 * softmax, kept from the forward pass.
 */
export function labelSmoothedCrossEntropy(logits: Tensor, targets: Int32Array, opts: LabelSmoothingOptions): Tensor {
  const eps = opts.smoothing;
  if (!(eps >= 0 && eps < 1)) throw new Error(`label smoothing must be in [0, 1), got ${eps}`);
  const ignore = opts.ignoreIndex ?? -1;
  const V = logits.shape[logits.rank - 1]!;
  const rows = logits.size / V;
  if (targets.length !== rows) throw new Error(`labelSmoothedCrossEntropy: ${targets.length} targets for ${rows} rows of logits`);
  const probs = new Float32Array(logits.size);
  let total = 0;
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const t = targets[r]!;
    if (t === ignore) continue;
    if (t < 0 || t >= V) throw new Error(`labelSmoothedCrossEntropy: target ${t} outside vocabulary of ${V}`);
    total += smoothedRow(logits.data.subarray(r * V, (r + 1) * V), probs.subarray(r * V, (r + 1) * V), t, eps);
    count++;
  }
  const out = Tensor.from([count > 0 ? total / count : 0], []);
  return record(out, [logits], 'labelSmoothedCrossEntropy', () => {
    if (count === 0) return;
    const g = logits.ensureGrad();
    const scale = out.grad![0]! / count;
    for (let r = 0; r < rows; r++) {
      const t = targets[r]!;
      if (t === ignore) continue;
      for (let v = 0; v < V; v++) {
        const q = (v === t ? 1 - eps : 0) + eps / V;
        g[r * V + v] = g[r * V + v]! + (probs[r * V + v]! - q) * scale;
      }
    }
  });
}

/** One row: fills p with softmax(z) and returns −Σ q·log p, with log p = z − logsumexp(z). */
function smoothedRow(z: Float32Array, p: Float32Array, target: number, eps: number): number {
  const lse = logSumExp(z);
  let meanNegLog = 0;
  for (let v = 0; v < z.length; v++) {
    p[v] = Math.exp(z[v]! - lse);
    meanNegLog += lse - z[v]!;
  }
  meanNegLog /= z.length;
  return (1 - eps) * (lse - z[target]!) + eps * meanNegLog;
}

/** log Σ exp(z), computed after subtracting the largest score so that no exp overflows. */
export function logSumExp(z: Float32Array): number {
  let max = -Infinity;
  for (const x of z) if (x > max) max = x;
  let sum = 0;
  for (let v = 0; v < z.length; v++) sum += Math.exp(z[v]! - max);
  return max + Math.log(sum);
}
