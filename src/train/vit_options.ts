import { z } from 'zod';
import { parseFlags } from '../util/validate.js';

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
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    weightDecay: z.number().nonnegative().default(0.05),
    gradClip: z.number().nonnegative().default(1.0),
    /** Fraction of a PNG folder without train/test subfolders held out for testing. */
    heldOut: z.number().gt(0).lt(1).default(0.1),
    logInterval: z.number().int().positive().default(50),
    seed: z.number().int().nonnegative().default(1337),
  })
  .refine((o) => o.dModel % o.heads === 0, { message: 'must be divisible by --heads', path: ['dModel'] })
  .refine((o) => o.minLr <= o.lr, { message: 'must not exceed --lr', path: ['minLr'] });

export type ViTTrainOptions = z.infer<typeof ViTTrainOptionsSchema>;
export type ViTTrainOptionsInput = z.input<typeof ViTTrainOptionsSchema>;

/** Validate, naming the offending flag in the one-line message. */
export function parseViTTrainOptions(raw: ViTTrainOptionsInput): ViTTrainOptions {
  return parseFlags(ViTTrainOptionsSchema, raw);
}
