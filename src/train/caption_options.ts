import { z } from 'zod';
import { parseFlags } from '../util/validate.js';
import { ADAMW_FLAGS, HEADS_DIVIDE_D_MODEL, headsDivideDModel, MIN_LR_BELOW_LR, minLrBelowLr } from './encoder_train_flags.js';

/**
 * Captioner training hyperparameters: a small ViT (7×7 patches, width 64,
 * 4 layers) and a 2-layer text decoder (docs/captioning.md).
 */
export const CaptionTrainOptionsSchema = z
  .object({
    patch: z.number().int().positive().default(7),
    dModel: z.number().int().positive().default(64),
    layers: z.number().int().positive().default(4),
    decoderLayers: z.number().int().positive().default(2),
    heads: z.number().int().positive().default(4),
    dFf: z.number().int().positive().optional(),
    dropout: z.number().min(0).lt(1).default(0),
    /** Weight of the ViT head's class loss beside the caption loss (0 = captions only). */
    classLossWeight: z.number().nonnegative().default(0.5),
    epochs: z.number().int().positive().default(5),
    maxSteps: z.number().int().positive().optional(),
    batchSize: z.number().int().positive().default(64),
    lr: z.number().positive().finite().default(2e-3),
    minLr: z.number().nonnegative().finite().default(1e-5),
    warmupSteps: z.number().int().nonnegative().default(200),
    ...ADAMW_FLAGS,
    /** Use only the first N training / test images (0 = all). */
    trainImages: z.number().int().nonnegative().default(0),
    testImages: z.number().int().nonnegative().default(2000),
    logInterval: z.number().int().positive().default(50),
    seed: z.number().int().nonnegative().default(1337),
  })
  .refine(headsDivideDModel, HEADS_DIVIDE_D_MODEL)
  .refine(minLrBelowLr, MIN_LR_BELOW_LR);

export type CaptionTrainOptions = z.infer<typeof CaptionTrainOptionsSchema>;
export type CaptionTrainOptionsInput = z.input<typeof CaptionTrainOptionsSchema>;

export function parseCaptionTrainOptions(raw: CaptionTrainOptionsInput): CaptionTrainOptions {
  return parseFlags(CaptionTrainOptionsSchema, raw);
}
