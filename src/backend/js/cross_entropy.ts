/**
 * Cross-entropy fused with log-softmax: loss = logsumexp(logits) − logits[target].
 * Computing it in one pass never forms probabilities that could underflow to 0
 * and give log(0) = −∞. With label smoothing ε (Szegedy et al. 2016; the
 * Transformer paper's 0.1) the target is q = (1 − ε)·onehot + ε/V, and a row's
 * loss −Σ q·log p = (1 − ε)·(lse − z_t) + ε·(lse − mean z): the model is
 * never pushed to infinite confidence.
 */
export function crossEntropyForward(
  logits: Float32Array, targets: Int32Array, lse: Float32Array, rows: number, vocab: number, ignoreIndex: number, smoothing = 0,
): { sum: number; count: number } {
  let sum = 0;
  let count = 0;
  for (let r = 0; r < rows; r++) {
    const o = r * vocab;
    let max = -Infinity;
    for (let j = 0; j < vocab; j++) if (logits[o + j]! > max) max = logits[o + j]!;
    let s = 0;
    for (let j = 0; j < vocab; j++) s += Math.exp(logits[o + j]! - max);
    const l = max + Math.log(s);
    lse[r] = l;
    const t = targets[r]!;
    if (t === ignoreIndex) continue;
    if (smoothing > 0) {
      let z = 0;
      for (let j = 0; j < vocab; j++) z += logits[o + j]!;
      sum += (1 - smoothing) * (l - logits[o + t]!) + smoothing * (l - z / vocab);
    } else {
      sum += l - logits[o + t]!;
    }
    count++;
  }
  return { sum, count };
}

/** d loss / d logits = softmax − q (q the target, smoothed by ε: (1 − ε)·onehot + ε/V), times the upstream scale. */
export function crossEntropyBackward(
  logits: Float32Array, targets: Int32Array, lse: Float32Array, dLogits: Float32Array,
  rows: number, vocab: number, ignoreIndex: number, scale: number, accumulate: boolean, smoothing = 0,
): void {
  if (!accumulate) dLogits.fill(0, 0, rows * vocab);
  for (let r = 0; r < rows; r++) {
    const t = targets[r]!;
    if (t === ignoreIndex) continue;
    const o = r * vocab;
    const l = lse[r]!;
    const spread = (scale * smoothing) / vocab;
    for (let j = 0; j < vocab; j++) dLogits[o + j] = dLogits[o + j]! + scale * Math.exp(logits[o + j]! - l) - spread;
    dLogits[o + t] = dLogits[o + t]! - scale * (1 - smoothing);
  }
}
