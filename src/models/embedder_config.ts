import { z } from 'zod';
import { parseConfig } from '../util/validate.js';

/** Every size of an Embedder, as data. `model_type` in config.json is "embedder". */
export const EmbedderConfigSchema = z
  .object({
    vocab_size: z.number().int().positive(),
    d_model: z.number().int().positive(),
    n_layer: z.number().int().positive(),
    n_head: z.number().int().positive(),
    /** Feed-forward width; 4·d_model when left out. */
    d_ff: z.number().int().positive().optional(),
    /** Longest input in tokens; longer texts are cut to this. */
    max_len: z.number().int().positive().default(64),
    positions: z.enum(['learned', 'sinusoidal', 'rope']).default('learned'),
    activation: z.enum(['relu', 'gelu']).default('gelu'),
    dropout: z.number().min(0).lt(1).default(0),
    /**
     * The nested prefix sizes trained as embeddings, ascending, ending with
     * d_model. [d_model] alone is plain (non-Matryoshka) training.
     */
    matryoshka_dims: z.array(z.number().int().positive()).nonempty().optional(),
    /**
     * Pooling: the plain mean of the positions (left out), or a mean weighted
     * by each token's weight here, one per vocabulary id (attn's trainer
     * writes the inverse document frequency of the training text:
     * `--pooling idf`).
     */
    token_weights: z.array(z.number().nonnegative()).optional(),
  })
  .refine((c) => !c.token_weights || c.token_weights.length === c.vocab_size, { message: 'must have one weight per vocabulary id', path: ['token_weights'] })
  .refine((c) => c.d_model % c.n_head === 0, { message: 'd_model must be divisible by n_head', path: ['n_head'] })
  .refine((c) => !c.matryoshka_dims || c.matryoshka_dims.every((d, i, a) => d <= c.d_model && (i === 0 || d > a[i - 1]!)), {
    message: 'must be ascending and at most d_model',
    path: ['matryoshka_dims'],
  })
  .transform((c) => ({ ...c, d_ff: c.d_ff ?? 4 * c.d_model, matryoshka_dims: withFull(c.matryoshka_dims ?? [], c.d_model) }));

/** The full embedding is always one of the trained prefixes. */
function withFull(dims: number[], full: number): number[] {
  return dims[dims.length - 1] === full ? dims : [...dims, full];
}

export type EmbedderConfig = z.infer<typeof EmbedderConfigSchema>;
export type EmbedderConfigInput = z.input<typeof EmbedderConfigSchema>;

/** Validate a config, turning zod's report into one readable line. */
export function parseEmbedderConfig(raw: unknown, source = 'config'): EmbedderConfig {
  return parseConfig(EmbedderConfigSchema, raw, source);
}
