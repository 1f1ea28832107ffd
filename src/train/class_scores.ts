/**
 * Reading a classifier's scores [rows, classes] on the host: the class each
 * row picks, how many picks are right, and the softmax probabilities a
 * prediction reports. The ViT and the point-cloud trainer share them.
 */

/** Index of the largest score in each row (ties: the lower index). */
export function argmaxRows(logits: Float32Array, classes: number): Int32Array {
  const out = new Int32Array(logits.length / classes);
  for (let r = 0; r < out.length; r++) {
    let best = 0;
    for (let k = 1; k < classes; k++) if (logits[r * classes + k]! > logits[r * classes + best]!) best = k;
    out[r] = best;
  }
  return out;
}

/** How many predictions equal their labels. */
export function countMatches(predicted: ArrayLike<number>, labels: ArrayLike<number>): number {
  let n = 0;
  for (let i = 0; i < predicted.length; i++) if (predicted[i] === labels[i]) n++;
  return n;
}

/** Each row's class and softmax probabilities. */
export function classPredictions(logits: Float32Array, classes: number): Array<{ label: number; probabilities: number[] }> {
  const labels = argmaxRows(logits, classes);
  return Array.from(labels, (label, r) => {
    const row = logits.subarray(r * classes, (r + 1) * classes);
    const max = Math.max(...row);
    const e = Array.from(row, (v) => Math.exp(v - max));
    const z = e.reduce((a, b) => a + b, 0);
    return { label, probabilities: e.map((v) => v / z) };
  });
}
