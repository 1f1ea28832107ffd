/**
 * Cross-entropy fused with log-softmax: loss = logsumexp(logits) − logits[target].
 * Computing it in one pass never forms probabilities that could underflow to 0
 * and give log(0) = −∞.
 */
export function crossEntropyForward(
  logits: Float32Array, targets: Int32Array, lse: Float32Array, rows: number, vocab: number, ignoreIndex: number,
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
    sum += l - logits[o + t]!;
    count++;
  }
  return { sum, count };
}

/** d loss / d logits = softmax − onehot(target), times the upstream scale. */
export function crossEntropyBackward(
  logits: Float32Array, targets: Int32Array, lse: Float32Array, dLogits: Float32Array,
  rows: number, vocab: number, ignoreIndex: number, scale: number, accumulate: boolean,
): void {
  if (!accumulate) dLogits.fill(0, 0, rows * vocab);
  for (let r = 0; r < rows; r++) {
    const t = targets[r]!;
    if (t === ignoreIndex) continue;
    const o = r * vocab;
    const l = lse[r]!;
    for (let j = 0; j < vocab; j++) dLogits[o + j] = dLogits[o + j]! + scale * Math.exp(logits[o + j]! - l);
    dLogits[o + t] = dLogits[o + t]! - scale;
  }
}
