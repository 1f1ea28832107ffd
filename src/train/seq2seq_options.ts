import { z } from 'zod';
import { parseFlags } from '../util/validate.js';

/**
 * Everything `attn seq2seq train` can set. The defaults are the recipe that
 * reaches ≥ 98 % exact match on held-out numbers (en→de) on a laptop CPU:
 * the paper's architecture at d_model 128, 3 + 3 layers, post-norm, ReLU,
 * sinusoidal positions, label smoothing 0.1, Adam β2 0.98 with warm-up, and
 * cosine decay in place of the paper's inverse square root.
 */
export const Seq2SeqOptionsSchema = z
  .object({
    layers: z.number().int().positive().default(3),
    dModel: z.number().int().positive().default(128),
    heads: z.number().int().positive().default(4),
    dFf: z.number().int().positive().default(512),
    dropout: z.number().min(0).lt(1).default(0),
    norm: z.enum(['pre', 'post']).default('post'),
    activation: z.enum(['relu', 'gelu']).default('relu'),
    positions: z.enum(['sinusoidal', 'learned', 'rope']).default('sinusoidal'),
    shareEmbeddings: z.boolean().default(false),
    steps: z.number().int().nonnegative().default(1200),
    batchSize: z.number().int().positive().default(64),
    lr: z.number().positive().finite().default(1e-3),
    minLr: z.number().nonnegative().finite().default(5e-5),
    warmup: z.number().int().nonnegative().default(100),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.98),
    weightDecay: z.number().nonnegative().default(0.01),
    gradClip: z.number().nonnegative().default(1.0),
    labelSmoothing: z.number().min(0).lt(1).default(0.1),
    evalInterval: z.number().int().positive().default(400),
    /** Held-out pairs translated (greedy) at each evaluation. */
    evalSize: z.number().int().positive().default(500),
    logInterval: z.number().int().positive().default(25),
    seed: z.number().int().nonnegative().default(1337),
  })
  .refine((o) => o.dModel % o.heads === 0, { message: 'must divide --d-model', path: ['heads'] })
  .refine((o) => o.minLr <= o.lr, { message: 'must not exceed --lr', path: ['minLr'] });

export type Seq2SeqOptions = z.infer<typeof Seq2SeqOptionsSchema>;
export type Seq2SeqOptionsInput = z.input<typeof Seq2SeqOptionsSchema>;

/** Validate options; a bad value is one line naming its flag. */
export function parseSeq2SeqOptions(raw: Seq2SeqOptionsInput): Seq2SeqOptions {
  return parseFlags(Seq2SeqOptionsSchema, raw);
}
