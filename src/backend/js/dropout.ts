/**
 * Which values a dropout call zeroes: element i is dropped when a hash of
 * (seed, i) falls below p·2³². The hash (murmur3's 32-bit finaliser applied to
 * a Weyl sequence) is counter-based: any element's decision is computed on its
 * own, so the native backend can split the work across threads and still make
 * exactly the mask this reference makes from the same seed.
 */
export function dropBits(seed: number, i: number): number {
  let h = (seed ^ Math.imul(i, 0x9e3779b9)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Elements whose hash is below this are dropped: p of them, on average. */
export function dropThreshold(p: number): number {
  return Math.min(2 ** 32 - 1, Math.floor(p * 2 ** 32));
}

/**
 * Inverted dropout: zero each value with probability p and scale survivors by
 * 1/(1−p), so the expected activation is the same in training and evaluation.
 * mask holds each element's factor (0 or 1/(1−p)) for the backward pass.
 */
export function dropoutForward(x: Float32Array, out: Float32Array, mask: Float32Array, p: number, seed: number): void {
  const keep = Math.fround(1 / (1 - p)); // a float, as the native kernel multiplies by
  const threshold = dropThreshold(p);
  for (let i = 0; i < x.length; i++) {
    const m = dropBits(seed, i) < threshold ? 0 : keep;
    mask[i] = m;
    out[i] = x[i]! * m;
  }
}

/** dx (+)= dOut·mask: the dropped values pass no gradient back. */
export function dropoutBackward(dOut: Float32Array, mask: Float32Array, dx: Float32Array, accumulate: boolean): void {
  for (let i = 0; i < dOut.length; i++) dx[i] = (accumulate ? dx[i]! : 0) + dOut[i]! * mask[i]!;
}
