import { shuffled } from '../data/image_set.js';
import type { ScheduleOptions } from '../optim/schedule.js';
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

/** A run counted in epochs: how many steps, the learning-rate schedule over them, and the epoch each step is in. */
export interface EpochPlan {
  stepsPerEpoch: number;
  /** epochs × stepsPerEpoch, or the options' maxSteps when fewer. */
  maxSteps: number;
  /** Warm-up (at most a fifth of the run), then cosine decay to minLr over all the steps. */
  schedule: ScheduleOptions;
  /** The 1-based epoch that step `step` (1-based) ends in. */
  epochOf(step: number): number;
}

/** The plan of a classifier-style run over `count` examples (the ViT, point-cloud and captioning trainers). */
export function epochPlan(count: number, o: { batchSize: number; epochs: number; maxSteps?: number | undefined; lr: number; minLr: number; warmupSteps: number }): EpochPlan {
  const stepsPerEpoch = Math.ceil(count / o.batchSize);
  const maxSteps = Math.min(o.epochs * stepsPerEpoch, o.maxSteps ?? Infinity);
  return {
    stepsPerEpoch,
    maxSteps,
    schedule: { lr: o.lr, minLr: o.minLr, warmupIters: Math.min(o.warmupSteps, Math.floor(maxSteps / 5)), decayIters: maxSteps },
    epochOf: (step) => Math.max(1, Math.ceil(step / stepsPerEpoch)),
  };
}
