import { chatTemplateOf, endOfTextIds, stopTokenIds } from '../chat/for_tokenizer.js';
import type { ChatMessage } from '../chat/messages.js';
import type { ChatTemplate } from '../chat/template.js';
import type { CausalLM } from '../models/causal_lm.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import type { SamplingOptions } from './sampling.js';
import { streamText } from './stream.js';

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
 * <|eot_id|>, </s>, …). The whole conversation is run again for each reply
 * (no cache is kept between turns), so it must fit the model's context: the
 * oldest turns are dropped, with a warning, when it would not.
 */
export class ChatSession {
  readonly template: ChatTemplate;
  /** Ids that end a reply: the template's end-of-turn tokens and the tokenizer's end of text. */
  readonly stopTokens: readonly number[];
  private readonly reserve: number;
  private history: ChatMessage[] = [];
  private turns = 0;

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
    let reply = '';
    const { system: _s, maxTokens: _m, template: _t, onWarning: _w, seed, ...sampling } = this.opts;
    for await (const chunk of streamText(this.model, this.tokenizer, prompt.text, {
      ...sampling,
      maxNewTokens: budget,
      seed: (seed ?? 1337) + this.turns,
      stopTokens: this.stopTokens,
      // A template's end-of-turn marker that is not one token in this vocabulary still ends the turn as text.
      stop: this.template.stopTokens,
      longPrompt: 'error',
    })) {
      reply += chunk.text;
      if (chunk.text) yield chunk.text;
    }
    if (this.history !== before) return; // reset while the reply streamed
    this.history = [...kept, { role: 'assistant', content: reply }];
    this.turns++;
  }

  /**
   * The prompt for `messages` (with the generation prompt), dropping the
   * oldest turns after the system message until it leaves room for a reply
   * (maxTokens, at most half the context; with nothing left to drop, at
   * least one token).
   */
  private fit(messages: ChatMessage[]): { prompt: { text: string; length: number }; kept: ChatMessage[] } {
    const context = this.model.config.block_size;
    const head = messages[0]?.role === 'system' ? 1 : 0;
    let dropped = 0;
    for (;;) {
      const text = this.template.render(messages, { addGenerationPrompt: true });
      const length = this.tokenizer.encode(text, { allowedSpecial: 'all' }).length;
      if (length === 0) throw new UserError('the chat template renders this conversation as an empty prompt');
      const fits = length + this.reserve <= context;
      const droppable = messages.length - head - 1; // every turn before the new message
      if (fits || droppable <= 0) {
        if (length >= context) {
          throw new UserError(`the message does not fit the model's context of ${context} tokens (it makes a prompt of ${length}): send a shorter one${head ? ', or a shorter --system' : ''}`);
        }
        if (dropped > 0) this.opts.onWarning?.(`the conversation no longer fits the context of ${context} tokens: dropped the oldest ${dropped} message${dropped > 1 ? 's' : ''}`);
        return { prompt: { text, length }, kept: messages };
      }
      // Drop one whole exchange (the user's message and the reply to it), so the roles keep alternating.
      const n = messages[head + 1]?.role === 'assistant' && droppable >= 2 ? 2 : 1;
      messages = [...messages.slice(0, head), ...messages.slice(head + n)];
      dropped += n;
    }
  }
}
