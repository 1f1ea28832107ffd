import { z } from 'zod';
import { parseConfig } from '../util/validate.js';

/** Every size and choice of the encoder–decoder Transformer, as data. Defaults: the paper's choices at a small size. */
export const TransformerConfigSchema = z
  .object({
    vocab_size: z.number().int().positive(),
    /** Encoder layers and decoder layers (the paper's N, 6 each). */
    n_encoder_layers: z.number().int().positive().default(3),
    n_decoder_layers: z.number().int().positive().default(3),
    d_model: z.number().int().positive().default(128),
    n_head: z.number().int().positive().default(4),
    d_ff: z.number().int().positive().default(512),
    dropout: z.number().min(0).lt(1).default(0),
    /** Longest source or target sequence, BOS and EOS included. */
    max_length: z.number().int().positive().default(64),
    norm: z.enum(['pre', 'post']).default('post'),
    activation: z.enum(['relu', 'gelu']).default('relu'),
    positions: z.enum(['sinusoidal', 'learned', 'rope']).default('sinusoidal'),
    /** Source and target read tokens with one embedding table (one vocabulary for both languages). */
    share_embeddings: z.boolean().default(false),
    /** The output projection is the target embedding matrix (the paper shares it). */
    tie_output: z.boolean().default(true),
    bias: z.boolean().default(true),
    /** The token id that pads short rows: masked out of attention and of the loss. */
    pad_id: z.number().int().nonnegative().default(0),
  })
  .refine((c) => c.d_model % c.n_head === 0, { message: 'd_model must be divisible by n_head' })
  .refine((c) => c.positions !== 'rope' || (c.d_model / c.n_head) % 2 === 0, { message: 'rope needs an even head size (d_model / n_head)' });

export type TransformerConfig = z.infer<typeof TransformerConfigSchema>;
export type TransformerConfigInput = z.input<typeof TransformerConfigSchema>;

/** Validate a config, turning zod's report into one readable line. */
export function parseTransformerConfig(raw: unknown, source = 'config'): TransformerConfig {
  return parseConfig(TransformerConfigSchema, raw, source);
}
