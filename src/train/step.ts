/**
 * One training step — the same for every model and every objective.
 *
 * What differs between training a GPT, a ViT, a translator, an embedder (and
 * next, instruction tuning, a reward model or DPO) is only how a batch
 * becomes a scalar loss: that is an Objective. Everything after the loss is
 * shared and lives here:
 *
 *   zero grads → for each micro-batch: forward + loss, backward (scaled 1/n)
 *             → check the loss → clip the global gradient norm → AdamW(lr)
 *
 * Gradient accumulation is "more than one micro-batch per step": the
 * gradients of n micro-batches, each scaled by 1/n, add up to the gradient of
 * their mean loss — the same update as one batch n times as large, in the
 * memory of one micro-batch.
 *
 * The loop around it (evaluation, checkpoints, resume, the NaN guard,
 * progress) is runTraining in loop.ts.
 */
import { backend } from '../backend/index.js';
import { DeviceValuesError, isHost, type Storage } from '../backend/storage.js';
import type { AdamW } from '../optim/adamw.js';
import { clipToNorm, clipToNormQueued, squaredNorm } from '../optim/clip.js';
import { backward } from '../tensor/autograd.js';
import { allocStorage, copyStorage, readStorage, releaseStorage, viewStorage, withPassUploads, type Tensor } from '../tensor/tensor.js';

/** What a training run minimises: a batch in, a scalar loss out. */
export interface Objective<B> {
  /**
   * Forward pass of one micro-batch to a scalar loss tensor, with its graph
   * kept for backward. An objective may also read the forward pass for its
   * own statistics (accuracy, reward margins) before returning.
   */
  loss(batch: B): Tensor;
}

export interface StepSettings {
  /** This step's learning rate (the schedule's value). */
  lr: number;
  /** Clip the global gradient norm to this; 0 disables clipping. */
  gradClip: number;
}

export interface StepResult {
  /** Mean loss over the micro-batches. Not finite → no update was made. */
  loss: number;
  /** Global gradient norm before clipping; NaN when no update was made. */
  gradNorm: number;
}

/**
 * One optimizer step over `batches` (one per micro-batch) with the
 * optimizer's parameters. When the loss is not finite the weights and the
 * optimizer state are left untouched (the step is not taken), so whoever
 * drives the loop can stop with the last good weights intact.
 *
 * On a host backend. A device backend runs the same step with
 * trainStepAsync, which waits for the device once, for the step's numbers.
 */
export function trainStep<B>(opt: AdamW, objective: Objective<B>, batches: readonly B[], s: StepSettings): StepResult {
  const numbers = queueGradients(opt, objective, batches);
  if (!isHost(numbers)) throw new DeviceValuesError(backend().name, 'trainStep (use trainStepAsync)');
  return update(opt, numbers, batches.length, s);
}

/** trainStep on any backend: forward, backward and the gradient norm queued, one read, then clip and AdamW queued. */
export async function trainStepAsync<B>(opt: AdamW, objective: Objective<B>, batches: readonly B[], s: StepSettings): Promise<StepResult> {
  const numbers = queueGradients(opt, objective, batches);
  if (isHost(numbers)) return update(opt, numbers, batches.length, s);
  const values = await readStorage(numbers);
  releaseStorage(numbers);
  return update(opt, values, batches.length, s);
}

/**
 * A device step nothing waits for: forward, backward, the gradient norm,
 * clipping by it (clipToNormQueued: the norm never leaves the device) and
 * AdamW, all queued and submitted. Its loss is not read, so a loss that is
 * not a number is not caught here: the update is made, and the next step
 * that reads (runTrainingAsync reads at every log and evaluation step,
 * before any save) stops the run with the last checkpoint intact.
 */
export function queueTrainStep<B>(opt: AdamW, objective: Objective<B>, batches: readonly B[], s: StepSettings): null {
  const device = backend().device;
  if (!device) throw new Error('queueTrainStep runs on a device backend (a host step reads its loss at once: trainStep)');
  const numbers = queueGradients(opt, objective, batches);
  clipToNormQueued([opt.arena.grad], viewStorage(numbers, batches.length, 3), s.gradClip);
  opt.update(s.lr);
  releaseStorage(numbers);
  device.flush();
  return null;
}

/**
 * Zero the gradients, then forward and backward every micro-batch. Returns
 * the numbers the rest of the step depends on, in the backend's storage and
 * not yet read: each micro-batch's loss, then the squared global gradient
 * norm, then two slots where a queued step's clipping writes the norm and its
 * factor (clipToNormQueued).
 */
function queueGradients<B>(opt: AdamW, objective: Objective<B>, batches: readonly B[]): Storage {
  if (batches.length === 0) throw new Error('trainStep needs at least one micro-batch');
  const n = batches.length;
  opt.zeroGrad();
  // The same seed for every micro-batch: d(mean of n losses)/d(loss_i) = 1/n.
  const seed = Float32Array.of(1 / n);
  const numbers = allocStorage(n + 3, false);
  batches.forEach((batch, i) =>
    // On a device the micro-batch's uploads (its inputs, constants) go back to the pool once its backward is queued.
    withPassUploads(() => {
      const loss = objective.loss(batch);
      copyStorage(loss.storage, 0, numbers, i, 1);
      backward(loss, seed, { freeActivations: true });
    }));
  squaredNorm([opt.arena.grad], viewStorage(numbers, n, 1));
  return numbers;
}

/** Given the step's numbers: stop on a loss that is not finite, else clip and update. */
function update(opt: AdamW, numbers: Float32Array, n: number, s: StepSettings): StepResult {
  let sum = 0;
  for (let i = 0; i < n; i++) sum += numbers[i]!;
  const loss = sum / n;
  if (!Number.isFinite(loss)) return { loss, gradNorm: NaN };
  const gradNorm = Math.sqrt(numbers[n]!);
  clipToNorm([opt.arena.grad], gradNorm, s.gradClip);
  opt.update(s.lr);
  return { loss, gradNorm };
}
