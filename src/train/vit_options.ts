import { z } from 'zod';
import { parseFlags } from '../util/validate.js';
import { ADAMW_FLAGS, HEADS_DIVIDE_D_MODEL, headsDivideDModel, MIN_LR_BELOW_LR, minLrBelowLr } from './encoder_train_flags.js';

/**
 * ViT training hyperparameters. The defaults are a small ViT (7×7 patches,
 * width 64, 4 layers) that reaches about 88% on Fashion-MNIST in 5 epochs,
 * a few minutes on two CPU cores (docs/vit.md).
 */
export const ViTTrainOptionsSchema = z
  .object({
    patch: z.number().int().positive().default(7),
    dModel: z.number().int().positive().default(64),
    layers: z.number().int().positive().default(4),
    heads: z.number().int().positive().default(4),
    /** Feed-forward width; defaults to 2·dModel. */
    dFf: z.number().int().positive().optional(),
    dropout: z.number().min(0).lt(1).default(0),
    epochs: z.number().int().positive().default(5),
    /** Stop after this many steps even mid-epoch (tests, quick looks). */
    maxSteps: z.number().int().positive().optional(),
    batchSize: z.number().int().positive().default(128),
    lr: z.number().positive().finite().default(2e-3),
    minLr: z.number().nonnegative().finite().default(1e-5),
    warmupSteps: z.number().int().nonnegative().default(200),
    ...ADAMW_FLAGS,
    /** Fraction of a PNG folder without train/test subfolders held out for testing. */
    heldOut: z.number().gt(0).lt(1).default(0.1),
    logInterval: z.number().int().positive().default(50),
    seed: z.number().int().nonnegative().default(1337),
  })
  .refine(headsDivideDModel, HEADS_DIVIDE_D_MODEL)
  .refine(minLrBelowLr, MIN_LR_BELOW_LR);

export type ViTTrainOptions = z.infer<typeof ViTTrainOptionsSchema>;
export type ViTTrainOptionsInput = z.input<typeof ViTTrainOptionsSchema>;

/** Validate, naming the offending flag in the one-line message. */
export function parseViTTrainOptions(raw: ViTTrainOptionsInput): ViTTrainOptions {
  return parseFlags(ViTTrainOptionsSchema, raw);
}
