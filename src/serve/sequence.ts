import type { ConstrainedDocument, JsonConstraint } from '../generate/constrained/json_constraint.js';
import type { KVCache } from '../generate/kv_cache.js';
import type { PagedSequence } from '../generate/paged_kv/paged_sequence.js';
import { penalizeRepeats, sampleToken, type SamplingOptions } from '../generate/sampling.js';
import { Rng } from '../util/rng.js';

/** Why a sequence ended: OpenAI's reasons, plus the ways a server ends one early. */
export type FinishReason = 'stop' | 'length' | 'cancelled' | 'timeout' | 'shutdown' | 'error';

export interface SequenceParams extends SamplingOptions {
  /** Most tokens to generate (≥ 1); the context may end the sequence sooner. */
  maxTokens: number;
  seed: number;
  /** Ids that end the sequence when sampled (not emitted), e.g. <|endoftext|>. */
  stopTokens?: readonly number[];
  /** The LoRA adapter this sequence runs with (its id in the model's bank, nn/lora_bank.ts); absent: the base. */
  adapter?: number;
  /** Constrained decoding (response_format, tool calls): the text is one document of this grammar. */
  constraint?: JsonConstraint;
  /** The document may also not be written: the first token chooses (a tool call under tool_choice "auto"). */
  constraintOptional?: boolean;
}

export interface SequenceEvents {
  onToken(id: number): void;
  /** Called exactly once. */
  onFinish(reason: FinishReason, error?: Error): void;
}

/**
 * One request's generation as the scheduler sees it: its prompt, its own KV
 * cache (one row sized to what it can use, or a block table in the
 * scheduler's paged pool), its own sampling parameters and
 * random generator. It ends when it samples a stop token, reaches maxTokens,
 * fills the model's context (no sliding window while serving: positions are
 * absolute), or is finished from outside (stop string, disconnect, timeout).
 */
export class Sequence {
  /** Prompt then generated ids: the context a repetition penalty looks at. */
  readonly tokens: number[];
  readonly promptTokens: number;
  generated = 0;
  cache: KVCache | null = null;
  /** Its block table in the scheduler's KV block pool, when the scheduler pages (then `cache` stays null). */
  paged: PagedSequence | null = null;
  /** The draft model's cache, when the model is served with a draft (speculative decoding). */
  draftCache: KVCache | null = null;
  finishReason: FinishReason | null = null;
  /** performance.now() when the scheduler admitted it into the running batch (its prefill step). */
  admittedAt?: number;
  /** This sequence's random generator (a speculative round samples with it too). */
  readonly rng: Rng;
  private readonly stop: ReadonlySet<number>;
  private readonly document: ConstrainedDocument | null;

  constructor(
    prompt: ArrayLike<number>,
    readonly params: SequenceParams,
    private readonly events: SequenceEvents,
  ) {
    this.tokens = Array.from(prompt);
    this.promptTokens = this.tokens.length;
    this.rng = new Rng(params.seed);
    this.stop = new Set(params.stopTokens ?? []);
    const c = params.constraint;
    this.document = c ? (params.constraintOptional ? c.startOptional() : c.start()) : null;
  }

  get done(): boolean {
    return this.finishReason !== null;
  }

  /** The last id, to be fed at the next decode step. */
  get last(): number {
    return this.tokens[this.tokens.length - 1]!;
  }

  /** Positions the cache needs: the prompt plus every generated token but the last (which is never fed). */
  get cacheSize(): number {
    return this.promptTokens + this.params.maxTokens - 1;
  }

  /** Choose the next token from this row's scores (edited in place by the repetition penalty). */
  accept(logits: Float32Array): void {
    if (this.done) return;
    const p = this.params.repetitionPenalty;
    if (p !== undefined && p !== 1) penalizeRepeats(logits, this.tokens, p);
    if (this.document) {
      // Tokens left, this one included: max_tokens, and the cache (it ends the sequence when full).
      const left = Math.min(this.params.maxTokens - this.generated, this.cacheRoom + 1);
      const verdict = this.document.mask(logits, left);
      if (verdict === 'finished') return this.finish('stop');
      if (verdict === 'stuck') return this.finish('error', new Error('constrained decoding: no token of the vocabulary can continue the document'));
    }
    this.take(sampleToken(logits, this.params, this.rng));
  }

  /** Whether the argmax of the scores alone is this sequence's next token (greedy, no repetition penalty, no grammar): a device can choose it. */
  get greedyAlone(): boolean {
    const p = this.params;
    return (p.greedy === true || p.temperature === 0) && (p.repetitionPenalty === undefined || p.repetitionPenalty === 1) && !this.document;
  }

  /** Whether a speculative round may choose this sequence's tokens: no grammar or adapter shapes its scores. */
  get plain(): boolean {
    return !this.document && this.params.adapter === undefined;
  }

  /**
   * Append a chosen token (or end at a stop token). `more`: a speculative
   * round chose further tokens after this one, so the cache, already cut to
   * the round's end, says nothing about room after this token.
   */
  take(id: number, more = false): void {
    if (this.done) return;
    if (this.stop.has(id)) return this.finish('stop');
    this.document?.accept(id);
    this.tokens.push(id);
    this.generated++;
    this.events.onToken(id);
    if (this.done) return; // the listener finished it (a stop string)
    if (this.document?.finished) return this.finish('stop'); // the document is whole: nothing may follow
    if (this.generated >= this.params.maxTokens || (!more && this.cacheRoom === 0)) this.finish('length');
  }

  /** Positions its cache can still take before the model's context is full. */
  get cacheRoom(): number {
    return this.paged ? this.paged.room : this.cache!.free;
  }

  /** End the sequence (idempotent); the scheduler drops it before its next step and takes its cache back. */
  finish(reason: FinishReason, error?: Error): void {
    if (this.done) return;
    this.finishReason = reason;
    this.events.onFinish(reason, error);
  }
}
