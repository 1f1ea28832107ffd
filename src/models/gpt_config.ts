import { z } from 'zod';
import { parseConfig } from '../util/validate.js';

/** Every size of a GPT, as data (nanoGPT's GPTConfig). */
export const GPTConfigSchema = z
  .object({
    n_layer: z.number().int().positive(),
    n_head: z.number().int().positive(),
    n_embd: z.number().int().positive(),
    block_size: z.number().int().positive(),
    vocab_size: z.number().int().positive(),
    dropout: z.number().min(0).lt(1).default(0),
    /** Biases in Linear and LayerNorm layers (GPT-2 has them; nanoGPT's recipe drops them). */
    bias: z.boolean().default(true),
    layer_norm_epsilon: z.number().positive().default(1e-5),
    /** "learned": a trained vector per position added to the input (GPT-2); "rope": queries and keys rotated by position (ops/rope.ts). */
    position_encoding: z.enum(['learned', 'rope']).default('learned'),
  })
  .refine((c) => c.n_embd % c.n_head === 0, { message: 'n_embd must be divisible by n_head' })
  .refine((c) => c.position_encoding !== 'rope' || (c.n_embd / c.n_head) % 2 === 0, { message: 'rope needs an even head size (n_embd / n_head)' });

export type GPTConfig = z.infer<typeof GPTConfigSchema>;
export type GPTConfigInput = z.input<typeof GPTConfigSchema>;

/** Validate a config, turning zod's report into one readable line. */
export function parseGPTConfig(raw: unknown, source = 'config'): GPTConfig {
  return parseConfig(GPTConfigSchema, raw, source);
}
