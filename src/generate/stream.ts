import type { CausalLM } from '../models/causal_lm.js';
import { streamDecoder, type Tokenizer } from '../tokenizers/tokenizer.js';
import { BatchDecoder, type Decoder, type GenerateOptions } from './engine.js';
import { SpeculativeDecoder, type SpeculativeOptions } from './speculative.js';
import { StopStrings } from './stop_strings.js';

export interface TextGenerateOptions extends GenerateOptions {
  /** A row ends when its generated text contains one of these; the stop string itself is not returned. */
  stop?: readonly string[];
  /** Speculative decoding: a draft model proposes tokens, the model checks them (generate/speculative.ts). */
  speculative?: SpeculativeOptions;
}

export interface TextChunk {
  /** Which prompt this text continues. */
  row: number;
  /** New text (may be empty while a possible stop string is held back). */
  text: string;
  /** The token that produced it; absent for the final flush of a row. */
  id?: number;
  /** True on a row's last chunk. */
  done: boolean;
}

/**
 * Stream continuations of text prompts as they are generated: an async
 * iterator of chunks, yielding to the event loop between steps so a server
 * or UI stays responsive. Prompts are encoded with special tokens allowed.
 */
export async function* streamText(model: CausalLM, tokenizer: Tokenizer, prompts: string | readonly string[], opts: TextGenerateOptions): AsyncGenerator<TextChunk> {
  const texts = typeof prompts === 'string' ? [prompts] : prompts;
  const ids = texts.map((t) => tokenizer.encode(t, { allowedSpecial: 'all' }));
  const models = opts.speculative ? [model, opts.speculative.draft] : [model];
  const wasTraining = models.map((m) => m.training);
  for (const m of models) m.eval();
  try {
    const dec: Decoder = opts.speculative ? new SpeculativeDecoder(model, ids, { ...opts, ...opts.speculative }) : new BatchDecoder(model, ids, opts);
    const decoders = texts.map(() => streamDecoder(tokenizer));
    const stops = texts.map(() => new StopStrings(opts.stop ?? []));
    const closed = texts.map(() => false);
    const close = (row: number): TextChunk => {
      closed[row] = true;
      return { row, text: stops[row]!.flush(), done: true };
    };
    for (let b = 0; b < texts.length; b++) if (dec.done[b]) yield close(b);
    while (!dec.finished) {
      const step = dec.stepAsync ? await dec.stepAsync() : dec.step();
      for (let b = 0; b < step.length; b++) {
        const id = step[b];
        if (id === null || id === undefined) {
          if (!closed[b]) yield close(b);
          continue;
        }
        const text = stops[b]!.push(decoders[b]!(id));
        if (stops[b]!.stopped) dec.finish(b);
        if (dec.done[b]) {
          closed[b] = true;
          yield { row: b, text: text + stops[b]!.flush(), id, done: true };
        } else yield { row: b, text, id, done: false };
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  } finally {
    models.forEach((m, i) => m.train(wasTraining[i]));
  }
}

/** Complete continuations (generated text only) of each prompt. */
export async function generateText(model: CausalLM, tokenizer: Tokenizer, prompts: string | readonly string[], opts: TextGenerateOptions): Promise<string[]> {
  const n = typeof prompts === 'string' ? 1 : prompts.length;
  const out = Array.from({ length: n }, () => '');
  for await (const c of streamText(model, tokenizer, prompts, opts)) out[c.row] += c.text;
  return out;
}
