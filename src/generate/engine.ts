import { UserError } from '../util/errors.js';
import type { CausalLM } from '../models/causal_lm.js';
import { noGrad } from '../tensor/autograd.js';
import { Rng } from '../util/rng.js';
import { scoresCached } from './cached_forward.js';
import type { ConstrainedDocument, JsonConstraint } from './constrained/json_constraint.js';
import { KVCache } from './kv_cache.js';
import { checkSamplingOptions, penalizeRepeats, sampleToken, type SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Row b samples from its own generator seeded seed + b, so a row's text does not depend on its batch. */
  seed?: number;
  /** Keep keys and values of past positions (default). false recomputes the whole window each step: the reference. */
  cache?: boolean;
  /** Token ids that end a row when generated (the id itself is not emitted), e.g. <|endoftext|>. */
  stopTokens?: readonly number[];
  /** A prompt longer than the model's context: keep its last block_size − 1 tokens with a warning (default), or throw. */
  longPrompt?: 'crop' | 'error';
  onWarning?: (message: string) => void;
  /**
   * Constrained decoding: every row writes one document of this grammar
   * (a JSON Schema compiled by JsonConstraint.fromSchema), closed before
   * maxNewTokens runs out; the row ends when the document is finished.
   */
  constraint?: JsonConstraint;
}

/**
 * The prompts as lists, each checked against the model's vocabulary and cut
 * to fit its context (at most the last window − 1 tokens: one must be left to
 * generate; with a warning, or an error under longPrompt 'error'), after the
 * options themselves are checked.
 */
export function checkedPrompts(model: CausalLM, prompts: ReadonlyArray<ArrayLike<number>>, opts: GenerateOptions): number[][] {
  checkSamplingOptions(opts);
  if (!(Number.isInteger(opts.maxNewTokens) && opts.maxNewTokens >= 0)) throw new UserError(`max new tokens must be an integer ≥ 0 (got ${opts.maxNewTokens})`);
  if (prompts.length === 0) throw new UserError('generation needs at least one prompt');
  const { block_size: window, vocab_size: vocab } = model.config;
  return prompts.map((prompt, row) => {
    let p = Array.from(prompt);
    if (p.length === 0) throw new UserError(`prompt ${row} is empty: generation needs at least one token`);
    if (p.length >= window) {
      const msg = `prompt ${row} has ${p.length} tokens but the model's context is ${window}`;
      if (opts.longPrompt === 'error') throw new UserError(`${msg}; shorten it`);
      opts.onWarning?.(`${msg}: keeping its last ${window - 1}`);
      p = p.slice(-(window - 1));
    }
    for (const id of p) if (!(Number.isInteger(id) && id >= 0 && id < vocab)) throw new UserError(`prompt token id ${id} is outside the vocabulary (0 … ${vocab - 1})`);
    return p;
  });
}

/** What streamText needs of a decoder: BatchDecoder, or SpeculativeDecoder (generate/speculative.ts). */
export interface Decoder {
  readonly done: boolean[];
  readonly finished: boolean;
  /** The next token of every unfinished row; null for finished rows. */
  step(): Array<number | null>;
  /** End a row now (e.g. a stop string appeared in its text). */
  finish(row: number): void;
}

/**
 * Batched decoding. Prompts of different lengths are left-padded to one
 * length and run through the model together in one pass (prefill), filling
 * the KV cache; after that each step runs one token per row. When the
 * context is full the window slides as in the article: the last block_size
 * tokens are run again (positions are absolute, so a cache cannot slide).
 */
export class BatchDecoder implements Decoder {
  /** Each row's tokens: the (cropped) prompt, then everything generated. */
  readonly sequences: number[][];
  readonly generated: number[];
  readonly done: boolean[];
  private readonly cache: KVCache | null;
  private readonly rngs: Rng[];
  private readonly stop: ReadonlySet<number>;
  private readonly documents: ConstrainedDocument[] | null;
  private started = false;

  constructor(
    private readonly model: CausalLM,
    prompts: ReadonlyArray<ArrayLike<number>>,
    private readonly opts: GenerateOptions,
  ) {
    const window = model.config.block_size;
    this.sequences = checkedPrompts(model, prompts, opts);
    this.generated = this.sequences.map(() => 0);
    this.done = this.sequences.map(() => opts.maxNewTokens === 0);
    this.rngs = this.sequences.map((_, b) => new Rng((opts.seed ?? 1337) + b));
    this.stop = new Set(opts.stopTokens ?? []);
    this.documents = opts.constraint ? this.sequences.map(() => opts.constraint!.start()) : null;
    if (opts.constraint && opts.constraint.minBytes > opts.maxNewTokens && opts.maxNewTokens > 0) {
      throw new UserError(`max new tokens ${opts.maxNewTokens} is too few for the shortest document of the schema (${opts.constraint.minBytes} bytes; count one token per byte)`);
    }
    const longest = Math.max(...this.sequences.map((s) => s.length));
    this.cache = opts.cache === false ? null : new KVCache(model.config, this.sequences.length, Math.min(window, longest + opts.maxNewTokens));
  }

  get finished(): boolean {
    return this.done.every(Boolean);
  }

  /** End a row now (e.g. a stop string appeared in its text). */
  finish(row: number): void {
    this.done[row] = true;
  }

  /** Generate one token for every unfinished row; null for finished rows. */
  step(): Array<number | null> {
    if (this.finished) return this.sequences.map(() => null);
    const logits = noGrad(() => this.nextLogits());
    const V = this.model.config.vocab_size;
    return this.sequences.map((seq, b) => {
      if (this.done[b]) return null;
      const row = logits.subarray(b * V, (b + 1) * V);
      if (this.opts.repetitionPenalty !== undefined && this.opts.repetitionPenalty !== 1) penalizeRepeats(row, seq, this.opts.repetitionPenalty);
      const doc = this.documents?.[b];
      const verdict = doc?.mask(row, this.opts.maxNewTokens - this.generated[b]!);
      if (verdict === 'stuck') throw new Error('constrained decoding: no token of the vocabulary can continue the document');
      if (verdict === 'finished') {
        this.done[b] = true;
        return null;
      }
      const id = sampleToken(row, this.opts, this.rngs[b]!);
      if (this.stop.has(id)) {
        this.done[b] = true;
        return null;
      }
      doc?.accept(id);
      seq.push(id);
      if (++this.generated[b]! >= this.opts.maxNewTokens || doc?.finished) this.done[b] = true;
      return id;
    });
  }

  /** [B, vocab] scores for every row's next token (a fresh copy: sampling may edit it). */
  private nextLogits(): Float32Array {
    const window = this.model.config.block_size;
    if (!this.cache) {
      // The reference: each row alone, its whole window recomputed.
      const V = this.model.config.vocab_size;
      const out = new Float32Array(this.sequences.length * V);
      this.sequences.forEach((seq, b) => {
        const ctx = Int32Array.from(seq.slice(-window));
        out.set(this.model.nextTokenLogits(ctx, [1, ctx.length]).data, b * V);
      });
      return out;
    }
    if (!this.started || this.cache.free === 0) {
      this.started = true;
      return this.prefill(this.sequences.map((s) => s.slice(-Math.min(window, this.cache!.capacity))));
    }
    const last = Int32Array.from(this.sequences, (s) => s[s.length - 1]!);
    return scoresCached(this.model, last, [last.length, 1], this.cache);
  }

  /** Run whole (left-padded) rows through an emptied cache. */
  private prefill(rows: number[][]): Float32Array {
    const T = Math.max(...rows.map((r) => r.length));
    const ids = new Int32Array(rows.length * T); // padding is token 0, never attended to
    rows.forEach((r, b) => ids.set(r, b * T + T - r.length));
    this.cache!.reset(rows.map((r) => T - r.length));
    return scoresCached(this.model, ids, [rows.length, T], this.cache!);
  }
}

/**
 * Produce tokens one at a time for one prompt, each conditioned on everything
 * before it (with a KV cache unless opts.cache is false). The model sees at
 * most its last block_size tokens: the sliding context window of the article.
 */
export function* generate(model: CausalLM, prompt: ArrayLike<number>, opts: GenerateOptions): Generator<number> {
  for (const ids of generateBatch(model, [prompt], opts)) if (ids[0] !== null) yield ids[0]!;
}

/** Several prompts at once: yields, per step, the new id of every row (null once a row has finished). */
export function* generateBatch(model: CausalLM, prompts: ReadonlyArray<ArrayLike<number>>, opts: GenerateOptions): Generator<Array<number | null>> {
  const wasTraining = model.training;
  model.eval();
  try {
    const dec = new BatchDecoder(model, prompts, opts);
    while (!dec.finished) yield dec.step();
  } finally {
    model.train(wasTraining);
  }
}
