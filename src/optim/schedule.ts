export interface ScheduleOptions {
  lr: number;
  minLr: number;
  warmupIters: number;
  decayIters: number;
}

/**
 * Learning rate at step `it`: a linear warm-up (large early steps from random
 * weights are unstable), then a cosine curve down to minLr, then flat.
 */
export function learningRate(it: number, o: ScheduleOptions): number {
  if (it < o.warmupIters) return (o.lr * (it + 1)) / (o.warmupIters + 1);
  if (it > o.decayIters) return o.minLr;
  const ratio = (it - o.warmupIters) / Math.max(1, o.decayIters - o.warmupIters);
  const coeff = 0.5 * (1 + Math.cos(Math.PI * ratio));
  return o.minLr + coeff * (o.lr - o.minLr);
}
