import { chatTemplateOf, endOfTextIds, stopTokenIds } from '../chat/for_tokenizer.js';
import type { ChatMessage } from '../chat/messages.js';
import type { ChatTemplate } from '../chat/template.js';
import { backend } from '../backend/index.js';
import type { CausalLM } from '../models/causal_lm.js';
import { releaseStorage } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import { streamDecoder, type Tokenizer } from '../tokenizers/tokenizer.js';
import { Rng } from '../util/rng.js';
import { logitsCached, scoresCached } from './cached_forward.js';
import { KVCache } from './kv_cache.js';
import { checkSamplingOptions, penalizeRepeats, sampleToken, type SamplingOptions } from './sampling.js';
import { StopStrings } from './stop_strings.js';

export interface ChatSessionOptions extends SamplingOptions {
  /** The system message that starts every conversation (none: the template's own default, if it has one). */
  system?: string;
  /** Most tokens of one reply. */
  maxTokens: number;
  /** Seed of the first reply; reply n uses seed + n, so a conversation is reproducible and its replies differ. */
  seed?: number;
  /** The chat format (default: the tokenizer's own template, ChatML when it has none). */
  template?: ChatTemplate;
  /** Told when the oldest turns are dropped to fit the context, or a reply is shortened. */
  onWarning?: (message: string) => void;
}

/**
 * A conversation with a language model: the history of messages, rendered
 * with the model's chat template for every reply, which streams as it is
 * generated and ends at the template's end-of-turn tokens (<|im_end|>,
 * <|eot_id|>, </s>, …). The conversation must fit the model's context: the
 * oldest turns are dropped, with a warning, when it would not.
 *
 * The KV cache is kept between turns. The next prompt is the previous one,
 * the reply and the new message, so only the tokens after the part it shares
 * with what the cache holds are run: a reply costs its new message, not the
 * whole conversation again (until old turns are dropped, which changes the
 * start of the prompt and so runs it all once).
 */
export class ChatSession {
  readonly template: ChatTemplate;
  /** Ids that end a reply: the template's end-of-turn tokens and the tokenizer's end of text. */
  readonly stopTokens: readonly number[];
  private readonly reserve: number;
  private history: ChatMessage[] = [];
  private turns = 0;
  /** Keys and values of `cached` (one row, the whole context), made on the first reply. */
  private cache: KVCache | null = null;
  /** The token ids the cache holds, in order. */
  private cached: number[] = [];
  /** Prompt tokens the last reply took from the cache instead of running them. */
  reusedTokens = 0;

  constructor(
    private readonly model: CausalLM,
    private readonly tokenizer: Tokenizer,
    private readonly opts: ChatSessionOptions,
  ) {
    if (!(Number.isInteger(opts.maxTokens) && opts.maxTokens >= 1)) throw new UserError(`max tokens must be an integer ≥ 1 (got ${opts.maxTokens})`);
    const context = model.config.block_size;
    // Room kept free for each reply: maxTokens, but never more than half the context, or no history would ever fit.
    this.reserve = Math.min(opts.maxTokens, Math.floor(context / 2));
    if (this.reserve < opts.maxTokens) opts.onWarning?.(`max tokens ${opts.maxTokens} is more than half the model's context of ${context}: older turns are dropped to keep ${this.reserve} tokens free for each reply, and a reply gets what the conversation leaves`);
    this.template = opts.template ?? chatTemplateOf(tokenizer);
    this.stopTokens = [...new Set([...stopTokenIds(this.template, tokenizer), ...endOfTextIds(tokenizer)])];
    checkSamplingOptions(opts);
    this.reset();
  }

  /** The conversation so far (the system message first, if there is one). */
  get messages(): readonly ChatMessage[] {
    return this.history;
  }

  /** Forget every turn; the system message stays. */
  reset(): void {
    this.history = this.opts.system !== undefined ? [{ role: 'system', content: this.opts.system }] : [];
  }

  /**
   * Add the user's message and stream the assistant's reply, which joins the
   * history when it is complete. A template that fails to render, or a
   * message that cannot fit the context, is a UserError and leaves the
   * history as it was.
   */
  async *send(text: string): AsyncGenerator<string> {
    const before = this.history;
    const messages = [...this.history, { role: 'user', content: text }];
    const { prompt, kept } = this.fit(messages);
    const budget = Math.min(this.opts.maxTokens, this.model.config.block_size - prompt.length);
    if (budget < this.reserve) this.opts.onWarning?.(`the message leaves room for only ${budget} tokens of reply`);
    const reply = yield* this.generate(prompt.ids, budget);
    if (this.history !== before) return; // reset while the reply streamed
    this.history = [...kept, { role: 'assistant', content: reply }];
    this.turns++;
  }

  /**
   * Sample up to `budget` tokens after `ids`, streaming their text; returns
   * the whole reply. Stops at a stop token (not emitted) or, for a template
   * whose end-of-turn marker is not one token here, at its text.
   */
  /**
   * The scores after feeding `feed` through the cache, on the host (a copy:
   * sampling may edit it). On a device the pass is queued there and only the
   * last position's row of scores comes back.
   */
  private async nextScores(feed: Int32Array, cache: KVCache): Promise<Float32Array> {
    if (!backend().device) return scoresCached(this.model, feed, [1, feed.length], cache).slice();
    const scores = logitsCached(this.model, feed, [1, feed.length], cache);
    try {
      return Float32Array.from(await scores.read());
    } finally {
      releaseStorage(scores.storage);
    }
  }

  private async *generate(ids: Int32Array, budget: number): AsyncGenerator<string, string> {
    const { system: _s, maxTokens: _m, template: _t, onWarning: _w, seed, ...sampling } = this.opts;
    const cache = (this.cache ??= new KVCache(this.model.config, 1, this.model.config.block_size));
    // Reuse the longest prefix the cache holds; at least the last prompt token runs, to score the first reply token.
    let keep = 0;
    while (keep < this.cached.length && keep < ids.length - 1 && this.cached[keep] === ids[keep]) keep++;
    cache.truncate(keep);
    this.cached.length = keep;
    this.reusedTokens = keep;
    const rng = new Rng((seed ?? 1337) + this.turns);
    const stopIds = new Set(this.stopTokens);
    const decode = streamDecoder(this.tokenizer);
    const stops = new StopStrings(this.template.stopTokens);
    let feed = Array.from(ids.subarray(keep));
    let reply = '';
    const wasTraining = this.model.training;
    this.model.eval();
    try {
      for (let n = 0; n < budget && !stops.stopped; n++) {
        const logits = await this.nextScores(Int32Array.from(feed), cache);
        this.cached.push(...feed);
        if (sampling.repetitionPenalty !== undefined && sampling.repetitionPenalty !== 1) penalizeRepeats(logits, this.cached, sampling.repetitionPenalty);
        const id = sampleToken(logits, sampling, rng);
        if (stopIds.has(id)) break;
        const piece = stops.push(decode(id));
        reply += piece;
        if (piece) yield piece;
        feed = [id];
        await new Promise<void>((resolve) => setImmediate(resolve)); // let the terminal (Ctrl-C) and other work in
      }
      const rest = stops.flush();
      reply += rest;
      if (rest) yield rest;
      return reply;
    } catch (e) {
      this.cached.length = 0; // the cache may hold a half-run step: start afresh next time
      cache.truncate(0);
      throw e;
    } finally {
      this.model.train(wasTraining);
    }
  }

  /**
   * The prompt for `messages` (with the generation prompt), dropping the
   * oldest turns after the system message until it leaves room for a reply
   * (maxTokens, at most half the context; with nothing left to drop, at
   * least one token).
   */
  private fit(messages: ChatMessage[]): { prompt: { ids: Int32Array; length: number }; kept: ChatMessage[] } {
    const context = this.model.config.block_size;
    const head = messages[0]?.role === 'system' ? 1 : 0;
    let dropped = 0;
    for (;;) {
      const text = this.template.render(messages, { addGenerationPrompt: true });
      const ids = this.tokenizer.encode(text, { allowedSpecial: 'all' });
      const length = ids.length;
      if (length === 0) throw new UserError('the chat template renders this conversation as an empty prompt');
      const fits = length + this.reserve <= context;
      const droppable = messages.length - head - 1; // every turn before the new message
      if (fits || droppable <= 0) {
        if (length >= context) {
          throw new UserError(`the message does not fit the model's context of ${context} tokens (it makes a prompt of ${length}): send a shorter one${head ? ', or a shorter --system' : ''}`);
        }
        if (dropped > 0) this.opts.onWarning?.(`the conversation no longer fits the context of ${context} tokens: dropped the oldest ${dropped} message${dropped > 1 ? 's' : ''}`);
        return { prompt: { ids, length }, kept: messages };
      }
      // Drop one whole exchange (the user's message and the reply to it), so the roles keep alternating.
      const n = messages[head + 1]?.role === 'assistant' && droppable >= 2 ? 2 : 1;
      messages = [...messages.slice(0, head), ...messages.slice(head + n)];
      dropped += n;
    }
  }
}
