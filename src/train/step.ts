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
import type { AdamW } from '../optim/adamw.js';
import { clipGradNorm } from '../optim/clip.js';
import { backward } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';

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
 */
export function trainStep<B>(opt: AdamW, objective: Objective<B>, batches: readonly B[], s: StepSettings): StepResult {
  if (batches.length === 0) throw new Error('trainStep needs at least one micro-batch');
  opt.zeroGrad();
  // The same seed for every micro-batch: d(mean of n losses)/d(loss_i) = 1/n.
  const seed = Float32Array.of(1 / batches.length);
  let sum = 0;
  for (const batch of batches) {
    const loss = objective.loss(batch);
    sum += loss.item();
    backward(loss, seed, { freeActivations: true });
  }
  const loss = sum / batches.length;
  if (!Number.isFinite(loss)) return { loss, gradNorm: NaN };
  const gradNorm = clipGradNorm(opt.params.map(([, p]) => p), s.gradClip);
  opt.update(s.lr);
  return { loss, gradNorm };
}
