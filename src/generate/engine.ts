import { UserError } from '../util/errors.js';
import type { CausalLM } from '../models/causal_lm.js';
import { noGrad } from '../tensor/autograd.js';
import { Rng } from '../util/rng.js';
import { backend } from '../backend/index.js';
import { Tensor, copyStorage, releaseStorage, withDeviceScratch } from '../tensor/tensor.js';
import { argmaxRowsOf, logitsCached, scoresCached } from './cached_forward.js';
import { decodeAhead, dropPicks, pickGreedy, queueGreedyStep, type QueuedPicks } from './decode_ahead.js';
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
  /** step() on a backend whose values live on a device (BatchDecoder): waits for one small read. */
  stepAsync?(): Promise<Array<number | null>>;
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
  /** One row's scores, rewritten by each fused decode step (nextLogits). */
  private scoresInto: Float32Array | undefined;
  /** Greedy steps queued on the device whose tokens are still to be read, oldest first (stepAsync; decode_ahead.ts). */
  private ahead: QueuedPicks[] = [];

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
    if (this.finished) this.dropAhead();
  }

  /** Generate one token for every unfinished row; null for finished rows. */
  step(): Array<number | null> {
    if (this.finished) return this.sequences.map(() => null);
    const logits = noGrad(() => this.nextLogits());
    return this.choose((b, seq) => this.sampleRow(b, seq, logits));
  }

  /**
   * step() on any backend. On a host backend it is step(). On a device
   * backend the pass is queued on the device and the step waits for ONE
   * small read: greedy decoding (without a repetition penalty or a
   * constraint, which edit the scores on the host) takes each row's argmax
   * on the device and reads back one number per row; sampling reads back
   * each row's last scores ([rows, vocab], nothing else) and draws on the
   * host with the same code and generators as js, so a seed gives the same
   * tokens on either backend.
   */
  async stepAsync(): Promise<Array<number | null>> {
    if (!backend().device) return this.step();
    if (this.finished) return this.sequences.map(() => null);
    if (this.greedyOnDevice && this.cache && (this.ahead.length > 0 || (decodeAhead() > 0 && this.model.readsStoredIds?.()))) return this.stepAhead();
    const scores = this.nextLogitsOnDevice();
    try {
      if (this.greedyOnDevice) {
        const ids = await argmaxRowsOf(scores);
        return this.choose((b) => ids[b]!);
      }
      const logits = await scores.read();
      return this.choose((b, seq) => this.sampleRow(b, seq, logits));
    } finally {
      releaseStorage(scores.storage);
    }
  }

  /**
   * stepAsync for greedy decoding with a cache, queued ahead (decode_ahead.ts):
   * up to decodeAhead() more steps are recorded, each fed the last one's picks
   * on the device, before the oldest step's tokens are awaited.
   */
  private async stepAhead(): Promise<Array<number | null>> {
    const cache = this.cache!;
    if (this.ahead.length === 0) this.ahead.push(pickGreedy(this.nextLogitsOnDevice()));
    while (this.ahead.length <= decodeAhead() && this.mayQueue(this.ahead.length)) {
      this.ahead.push(queueGreedyStep(this.model, this.ahead[this.ahead.length - 1]!, cache));
    }
    const picks = this.ahead.shift()!;
    let ids: Int32Array;
    try {
      ids = await picks.read;
    } catch (e) {
      this.dropAhead();
      throw e;
    } finally {
      dropPicks([picks]);
    }
    const out = this.choose((b) => ids[b]!);
    if (this.finished) this.dropAhead();
    return out;
  }

  /**
   * Whether a step may be queued behind `queued` steps whose tokens are still
   * to come: the cache has a slot for it without sliding its window (which
   * needs the tokens on the host), and some row could still use its token.
   */
  private mayQueue(queued: number): boolean {
    if (this.cache!.free < 1) return false;
    return this.sequences.some((_, b) => !this.done[b] && this.generated[b]! + queued + 1 <= this.opts.maxNewTokens);
  }

  /** Forget the queued steps (the decoder is finished, or a read failed). */
  private dropAhead(): void {
    dropPicks(this.ahead);
    this.ahead = [];
  }

  /** The argmax alone decides every token: no host edits of the scores. */
  private get greedyOnDevice(): boolean {
    const penalty = this.opts.repetitionPenalty !== undefined && this.opts.repetitionPenalty !== 1;
    return (this.opts.greedy === true || this.opts.temperature === 0) && !penalty && !this.documents;
  }

  /** Row b's next token from its scores in logits [B, vocab] (edited in place: penalty, constraint), or 'finished'. */
  private sampleRow(b: number, seq: number[], logits: Float32Array): number | 'finished' {
    const V = this.model.config.vocab_size;
    const row = logits.subarray(b * V, (b + 1) * V);
    if (this.opts.repetitionPenalty !== undefined && this.opts.repetitionPenalty !== 1) penalizeRepeats(row, seq, this.opts.repetitionPenalty);
    const verdict = this.documents?.[b]?.mask(row, this.opts.maxNewTokens - this.generated[b]!);
    if (verdict === 'stuck') throw new UserError('constrained decoding: no token of the model\'s vocabulary can continue the document (its tokenizer may lack characters the schema needs, such as { or ")');
    if (verdict === 'finished') return 'finished';
    return sampleToken(row, this.opts, this.rngs[b]!);
  }

  /** Give every unfinished row the token `pick` chooses for it, and end rows that are done. */
  private choose(pick: (b: number, seq: number[]) => number | 'finished'): Array<number | null> {
    return this.sequences.map((seq, b) => {
      if (this.done[b]) return null;
      const id = pick(b, seq);
      if (id === 'finished' || this.stop.has(id)) {
        this.done[b] = true;
        return null;
      }
      const doc = this.documents?.[b];
      doc?.accept(id);
      seq.push(id);
      if (++this.generated[b]! >= this.opts.maxNewTokens || doc?.finished) this.done[b] = true;
      return id;
    });
  }

  /** [B, vocab] scores for every row's next token (the engine's own: sampling may edit it; valid until the next pass). */
  private nextLogits(): Float32Array {
    if (!this.cache) {
      // The reference: each row alone, its whole window recomputed.
      const V = this.model.config.vocab_size;
      const out = new Float32Array(this.sequences.length * V);
      this.windows().forEach((ctx, b) => out.set(this.model.nextTokenLogits(ctx, [1, ctx.length]).data, b * V));
      return out;
    }
    // step() is done with a row's scores before the next pass: one row's decode steps reuse one buffer.
    const into = this.sequences.length === 1 ? (this.scoresInto ??= new Float32Array(this.model.config.vocab_size)) : undefined;
    return this.cachedPass((ids, shape) => scoresCached(this.model, ids, shape, this.cache!, into));
  }

  /** nextLogits as a device tensor [B, vocab], for stepAsync (the caller releases its storage). */
  private nextLogitsOnDevice(): Tensor {
    if (this.cache) return this.cachedPass((ids, shape) => logitsCached(this.model, ids, shape, this.cache!));
    const rows = this.windows().map((ctx) =>
      noGrad(() => withDeviceScratch(() => this.model.nextTokenLogits(ctx, [1, ctx.length]), (t) => [t.storage])));
    return rows.length === 1 ? rows[0]! : noGrad(() => concatRows(rows));
  }

  /** Each row's last block_size tokens: what the model sees without a cache. */
  private windows(): Int32Array[] {
    return this.sequences.map((seq) => Int32Array.from(seq.slice(-this.model.config.block_size)));
  }

  /**
   * Run the cache's next pass through `run`: the whole (left-padded) rows
   * through an emptied cache at the start and whenever the cache is full
   * (the window slides), else each row's last token.
   */
  private cachedPass<T>(run: (ids: Int32Array, shape: [number, number]) => T): T {
    const cache = this.cache!;
    if (!this.started || cache.free === 0) {
      this.started = true;
      const rows = this.sequences.map((s) => s.slice(-Math.min(this.model.config.block_size, cache.capacity)));
      const T = Math.max(...rows.map((r) => r.length));
      const ids = new Int32Array(rows.length * T); // padding is token 0, never attended to
      rows.forEach((r, b) => ids.set(r, b * T + T - r.length));
      cache.reset(rows.map((r) => T - r.length));
      return run(ids, [rows.length, T]);
    }
    const last = Int32Array.from(this.sequences, (s) => s[s.length - 1]!);
    return run(last, [last.length, 1]);
  }
}

/** [1, vocab] rows stacked into [rows, vocab] (device copies; each row's storage is released). */
function concatRows(rows: Tensor[]): Tensor {
  const V = rows[0]!.shape[1]!;
  const out = Tensor.empty([rows.length, V]);
  rows.forEach((r, i) => {
    copyStorage(r.storage, 0, out.storage, i * V, V);
    releaseStorage(r.storage);
  });
  return out;
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
