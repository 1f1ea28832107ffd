import { z } from 'zod';
import { parseFlags } from '../util/validate.js';

/** Every setting of an embedder training run, with defaults sized for a 2-core CPU. */
export const EmbedderOptionsSchema = z
  .object({
    layers: z.number().int().positive().default(2),
    dModel: z.number().int().positive().default(128),
    heads: z.number().int().positive().default(4),
    maxLen: z.number().int().positive().default(64),
    positions: z.enum(['learned', 'sinusoidal', 'rope']).default('learned'),
    dropout: z.number().min(0).lt(1).default(0),
    /**
     * Nested prefixes trained together (the full size is always added); null
     * trains the full dimension only (the baseline). Default: d/8, d/4, d/2.
     */
    matryoshka: z.array(z.number().int().positive()).nullable().optional(),
    temperature: z.number().positive().default(0.05),
    symmetric: z.boolean().default(true),
    batchSize: z.number().int().min(2).default(64),
    steps: z.number().int().nonnegative().default(1000),
    lr: z.number().positive().finite().default(1e-3),
    /** The end of the cosine decay; default lr / 10 (1e-4 at the default lr). */
    minLr: z.number().nonnegative().finite().optional(),
    warmupSteps: z.number().int().nonnegative().default(50),
    weightDecay: z.number().nonnegative().default(0.01),
    gradClip: z.number().nonnegative().default(1.0),
    evalInterval: z.number().int().positive().default(250),
    /** Held-out pairs scored by recall@1 (chance is 1/evalPairs). */
    evalPairs: z.number().int().min(2).default(500),
    logInterval: z.number().int().positive().default(10),
    seed: z.number().int().nonnegative().default(1337),
    tokenizer: z.enum(['char', 'word', 'bpe']).default('word'),
    /**
     * Whether the word tokenizer makes tokens of white space (the default).
     * Without, a window of maxLen tokens holds about twice the words, and no
     * position is spent on a space (rag demo: docs/rag.md, seventh round).
     */
    spaceTokens: z.boolean().default(true),
    /**
     * How token vectors become the sentence's: their plain mean, or a mean
     * weighted by each token's inverse document frequency over the training
     * texts (models/embedder.ts; rag demo uses it).
     */
    pooling: z.enum(['mean', 'idf']).default('mean'),
    /**
     * Whether the word tokenizer folds text to lower case (learned and
     * encoded alike; recorded in tokenizer.json), so a word at the start of
     * a sentence is the word elsewhere (rag demo: docs/rag.md, tenth round).
     */
    lowercase: z.boolean().default(false),
    vocabSize: z.number().int().positive().optional(),
  })
  .refine((o) => o.dModel % o.heads === 0, { message: 'd_model must be divisible by heads', path: ['dModel'] })
  .refine((o) => o.spaceTokens || o.tokenizer === 'word', { message: 'only the word tokenizer can leave out space tokens', path: ['spaceTokens'] })
  .refine((o) => !o.lowercase || o.tokenizer === 'word', { message: 'only the word tokenizer can fold case', path: ['lowercase'] })
  .refine((o) => o.minLr === undefined || o.minLr <= o.lr, { message: 'min_lr must not exceed lr', path: ['minLr'] })
  .refine((o) => !o.matryoshka || o.matryoshka.every((d, i, a) => d <= o.dModel && (i === 0 || d > a[i - 1]!)), {
    message: 'prefix sizes must be ascending and at most --d-model',
    path: ['matryoshka'],
  })
  .transform((o) => ({ ...o, minLr: o.minLr ?? o.lr / 10 }));

export type EmbedderOptions = z.infer<typeof EmbedderOptionsSchema>;

/** The prefixes an options object asks for, full size included. */
export function trainedPrefixes(o: EmbedderOptions): number[] {
  if (o.matryoshka === null) return [o.dModel];
  const dims = o.matryoshka ?? [8, 4, 2].map((k) => Math.floor(o.dModel / k)).filter((d) => d >= 1);
  return [...new Set([...dims, o.dModel])];
}
export type EmbedderOptionsInput = z.input<typeof EmbedderOptionsSchema>;

/** Validate options; the message names the flag to fix. */
export function parseEmbedderOptions(raw: EmbedderOptionsInput): EmbedderOptions {
  return parseFlags(EmbedderOptionsSchema, raw);
}
