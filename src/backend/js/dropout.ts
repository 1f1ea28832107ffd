/**
 * Inverted dropout: zero each value with probability p and scale survivors by
 * 1/(1−p), so the expected activation is the same in training and evaluation.
 */
export function dropoutForward(x: Float32Array, out: Float32Array, mask: Float32Array, p: number, random: () => number): void {
  const keep = 1 / (1 - p);
  for (let i = 0; i < x.length; i++) {
    const m = random() < p ? 0 : keep;
    mask[i] = m;
    out[i] = x[i]! * m;
  }
}
