import { z } from 'zod';

/**
 * What the trainers of the encoder models — the ViT, the captioner, the
 * point-cloud transformer — share in their flags: AdamW's settings with the
 * same defaults, and two checks. Each options file spreads these beside its
 * own sizes and schedule.
 */
export const ADAMW_FLAGS = {
  beta1: z.number().min(0).lt(1).default(0.9),
  beta2: z.number().min(0).lt(1).default(0.999),
  weightDecay: z.number().nonnegative().default(0.05),
  gradClip: z.number().nonnegative().default(1.0),
};

/** --d-model splits evenly into --heads. */
export const headsDivideDModel = (o: { dModel: number; heads: number }): boolean => o.dModel % o.heads === 0;
export const HEADS_DIVIDE_D_MODEL = { message: 'must be divisible by --heads', path: ['dModel'] };

/** The schedule decays to --min-lr, which must not exceed --lr. */
export const minLrBelowLr = (o: { minLr: number; lr: number }): boolean => o.minLr <= o.lr;
export const MIN_LR_BELOW_LR = { message: 'must not exceed --lr', path: ['minLr'] };
