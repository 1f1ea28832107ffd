import type { Rng } from '../util/rng.js';

export interface SamplingOptions {
  /** Divide logits by T: < 1 sharpens the distribution, > 1 flattens it. */
  temperature?: number;
  /** Keep only the k most likely tokens. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probabilities sum to ≥ p (nucleus sampling). */
  topP?: number;
  /** Always take the most likely token (ignores the options above). */
  greedy?: boolean;
}

/** Index of the largest value; the first one on ties, as torch.argmax. */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** Choose the next token id from one row of logits. */
export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  if (opts.greedy || opts.temperature === 0) return argmax(logits);
  const t = opts.temperature ?? 1;
  const order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
  let keep = order.length;
  if (opts.topK !== undefined && opts.topK > 0) keep = Math.min(keep, opts.topK);
  // Softmax over the candidates, largest first so the max is order[0].
  const max = logits[order[0]!]!;
  const probs = order.slice(0, keep).map((i) => Math.exp((logits[i]! - max) / t));
  let total = probs.reduce((a, b) => a + b, 0);
  if (opts.topP !== undefined && opts.topP < 1) {
    let cum = 0;
    let n = 0;
    while (n < probs.length && cum < opts.topP * total) cum += probs[n++]!;
    probs.length = Math.max(1, n);
    total = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng.random() * total;
  for (let i = 0; i < probs.length; i++) {
    r -= probs[i]!;
    if (r < 0) return order[i]!;
  }
  return order[probs.length - 1]!;
}
