import { z } from 'zod';
import { parseFlags } from '../util/validate.js';
import { ADAMW_FLAGS, HEADS_DIVIDE_D_MODEL, headsDivideDModel, MIN_LR_BELOW_LR, minLrBelowLr } from './encoder_train_flags.js';

/**
 * Point-cloud classifier hyperparameters. The defaults (32 patches of 16
 * points, width 64, 4 layers) learn the six generated shapes, turned at
 * random, to ≈ 97.7 % test accuracy in under 4 minutes on two CPU cores
 * (docs/point_clouds.md).
 */
export const PointCloudTrainOptionsSchema = z
  .object({
    groups: z.number().int().positive().default(32),
    groupSize: z.number().int().min(2).default(16),
    pointHidden: z.number().int().positive().default(64),
    dModel: z.number().int().positive().default(64),
    layers: z.number().int().positive().default(4),
    heads: z.number().int().positive().default(4),
    /** Feed-forward width; defaults to 2·dModel. */
    dFf: z.number().int().positive().optional(),
    dropout: z.number().min(0).lt(1).default(0),
    epochs: z.number().int().positive().default(8),
    maxSteps: z.number().int().positive().optional(),
    batchSize: z.number().int().positive().default(32),
    lr: z.number().positive().finite().default(1e-3),
    minLr: z.number().nonnegative().finite().default(1e-5),
    warmupSteps: z.number().int().nonnegative().default(100),
    ...ADAMW_FLAGS,
    /** Turn every training cloud by a fresh random rotation each epoch. */
    rotate: z.boolean().default(true),
    /** The generated task's size: clouds per shape in the training and test sets. */
    trainPerClass: z.number().int().positive().default(400),
    testPerClass: z.number().int().positive().default(100),
    /** Fraction of a folder without train/ and test/ held out for testing. */
    heldOut: z.number().gt(0).lt(1).default(0.2),
    logInterval: z.number().int().positive().default(20),
    seed: z.number().int().nonnegative().default(1337),
  })
  .refine(headsDivideDModel, HEADS_DIVIDE_D_MODEL)
  .refine(minLrBelowLr, MIN_LR_BELOW_LR);

export type PointCloudTrainOptions = z.infer<typeof PointCloudTrainOptionsSchema>;
export type PointCloudTrainOptionsInput = z.input<typeof PointCloudTrainOptionsSchema>;

export function parsePointCloudTrainOptions(raw: PointCloudTrainOptionsInput): PointCloudTrainOptions {
  return parseFlags(PointCloudTrainOptionsSchema, raw);
}
