import { z } from 'zod';
import { parseFlags } from '../util/validate.js';

/**
 * The settings of the fine-tuning trainers (SFT, the reward model, DPO).
 * Defaults suit a small model adapting to a new format: a short warm-up, a
 * cosine decay to a tenth of the peak, no weight decay (the pretrained
 * weights are the starting point, not noise to shrink), a tenth of the rows
 * held out.
 */
export const FineTuneOptionsSchema = z
  .object({
    maxIters: z.number().int().nonnegative().default(500),
    batchSize: z.number().int().positive().default(8),
    gradAccum: z.number().int().positive().default(1),
    lr: z.number().positive().finite().default(3e-4),
    /** Default: lr / 10. */
    minLr: z.number().nonnegative().finite().optional(),
    warmupIters: z.number().int().nonnegative().default(20),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.99),
    eps: z.number().positive().default(1e-8),
    weightDecay: z.number().nonnegative().default(0),
    gradClip: z.number().nonnegative().default(1.0),
    evalInterval: z.number().int().positive().default(100),
    logInterval: z.number().int().positive().default(10),
    /** Fraction of rows held out for evaluation (at least one row). */
    valFraction: z.number().gt(0).lt(1).default(0.1),
    seed: z.number().int().nonnegative().default(1337),
  })
  .refine((o) => o.minLr === undefined || o.minLr <= o.lr, { message: 'min_lr must not exceed lr', path: ['minLr'] });

export type FineTuneOptions = z.infer<typeof FineTuneOptionsSchema>;
export type FineTuneOptionsInput = z.input<typeof FineTuneOptionsSchema>;

export function parseFineTuneOptions(raw: FineTuneOptionsInput): FineTuneOptions {
  return parseFlags(FineTuneOptionsSchema, raw);
}

/** The learning-rate schedule of a fine-tuning run. */
export function fineTuneSchedule(o: FineTuneOptions): { lr: number; minLr: number; warmupIters: number; decayIters: number } {
  return { lr: o.lr, minLr: o.minLr ?? o.lr / 10, warmupIters: o.warmupIters, decayIters: o.maxIters };
}
