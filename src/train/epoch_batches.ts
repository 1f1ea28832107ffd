import { shuffled } from '../data/image_set.js';
import type { Rng } from '../util/rng.js';

/**
 * Mini-batches by epoch, for trainers over a fixed set of examples: a fresh
 * random order at the start of each epoch, then consecutive slices of it
 * (the last one shorter when the batch size does not divide the count).
 * Returns the indices of the batch for the step after `step` steps; steps
 * must be asked for in order.
 */
export function epochBatches(count: number, batchSize: number, rng: Rng): (step: number) => Int32Array {
  const stepsPerEpoch = Math.ceil(count / batchSize);
  let order: Int32Array = new Int32Array(0);
  return (step) => {
    if (step % stepsPerEpoch === 0) order = shuffled(count, rng);
    const start = (step % stepsPerEpoch) * batchSize;
    return order.subarray(start, Math.min(start + batchSize, count));
  };
}
