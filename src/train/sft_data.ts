/**
 * Conversations as training rows for supervised fine-tuning (SFT).
 *
 * A conversation is rendered with the model's chat template into one text,
 * then tokenized. The model learns to *answer*, not to write the user's side,
 * so the loss counts only the tokens of assistant turns. Which characters
 * those are is found by rendering prefixes, as TRL and Axolotl do: the
 * assistant's i-th reply is everything between
 *
 *   render(messages before it, add_generation_prompt = true)   (ends "…<|im_start|>assistant\n")
 *   render(messages up to and including it)                     (ends "…reply<|im_end|>\n")
 *
 * so the reply, its end-of-turn marker and whatever the template writes after
 * it are learned — the model learns when to stop — and nothing else is. This
 * works for any template whose renderings of prefixes are prefixes of the
 * whole (every common one is); a template that is not is refused.
 */
import type { ChatMessage } from '../chat/messages.js';
import type { ChatTemplate } from '../chat/template.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';

/** A tokenized conversation: ids, and 1 where a token belongs to an assistant turn. */
export interface ChatExample {
  /** The row it came from (1-based), for messages. */
  row: number;
  ids: Int32Array;
  mask: Uint8Array;
}

/** The rendered text and the [start, end) character spans of its assistant turns. */
export function assistantSpans(template: ChatTemplate, messages: readonly ChatMessage[], row: number): { text: string; spans: Array<[number, number]> } {
  const text = template.render(messages);
  const spans: Array<[number, number]> = [];
  messages.forEach((m, i) => {
    if (m.role !== 'assistant') return;
    const before = template.render(messages.slice(0, i), { addGenerationPrompt: true });
    const through = template.render(messages.slice(0, i + 1));
    if (!through.startsWith(before) || !text.startsWith(through)) {
      throw new UserError(`row ${row}: the chat template does not render a conversation's beginning as the beginning of the whole, so assistant turns cannot be found`);
    }
    spans.push([before.length, through.length]);
  });
  return { text, spans };
}

/**
 * Tokenize a conversation with its assistant mask. The text is cut at the
 * span edges and each piece encoded alone, so every token is wholly inside
 * or outside an assistant turn (a BPE merge never straddles the edge).
 * Special tokens written by the template are encoded as their ids.
 */
export function encodeConversation(template: ChatTemplate, tokenizer: Tokenizer, messages: readonly ChatMessage[], row: number): ChatExample {
  const { text, spans } = assistantSpans(template, messages, row);
  const ids: number[] = [];
  const mask: number[] = [];
  const push = (piece: string, learn: number): void => {
    if (piece === '') return;
    for (const id of tokenizer.encode(piece, { allowedSpecial: 'all' })) {
      ids.push(id);
      mask.push(learn);
    }
  };
  let at = 0;
  for (const [start, end] of spans) {
    push(text.slice(at, start), 0);
    push(text.slice(start, end), 1);
    at = end;
  }
  push(text.slice(at), 0);
  return { row, ids: Int32Array.from(ids), mask: Uint8Array.from(mask) };
}

/**
 * Plain text as training examples with every token learned (rehearsal): the
 * text is cut at line ends into windows of about `chars` characters, each an
 * example whose mask is all ones. Mixed into SFT, they keep up what
 * pretraining taught while the model learns the chat format. Rows are
 * numbered −1, −2, … so they are never held out.
 */
export function plainTextExamples(tokenizer: Tokenizer, text: string, chars: number, blockSize: number): ChatExample[] {
  const out: ChatExample[] = [];
  let window = '';
  const flush = (): void => {
    if (window === '') return;
    const ids = tokenizer.encode(window).slice(0, blockSize + 1);
    if (ids.length > 1) out.push({ row: -(out.length + 1), ids: Int32Array.from(ids), mask: new Uint8Array(ids.length).fill(1) });
    window = '';
  };
  for (const line of text.split('\n')) {
    if (line === '') continue;
    window += line + '\n';
    if (window.length >= chars) flush();
  }
  flush();
  return out;
}

/**
 * The prompt that asks for a conversation's last assistant reply, and that
 * reply: what exact-match evaluation generates from and compares against.
 */
export function lastTurn(template: ChatTemplate, messages: readonly ChatMessage[]): { prompt: string; answer: string } {
  let last = messages.length - 1;
  while (last >= 0 && messages[last]!.role !== 'assistant') last--;
  if (last < 0) throw new Error('lastTurn: no assistant turn');
  return { prompt: template.render(messages.slice(0, last), { addGenerationPrompt: true }), answer: messages[last]!.content };
}

/**
 * Cut n rows into training and held-out parts: a fixed-seed shuffle, so the
 * same data, fraction and seed always hold out the same rows (`attn sft eval`
 * finds them again). At least one row on each side.
 *
 * `keys` (one per row, e.g. the prompt) keeps rows with the same key on the
 * same side: a held-out instruction must be one the model never trained on,
 * and generated or scraped data repeats instructions. Groups are shuffled and
 * taken while they fit in the held-out share; with every key distinct (or no
 * keys) this is exactly a shuffle of the rows.
 */
export function heldOutSplit(n: number, fraction: number, seed: number, keys?: readonly string[]): { train: number[]; val: number[] } {
  if (n < 2) throw new UserError(`need at least 2 rows to hold some out for evaluation (got ${n})`);
  if (keys && keys.length !== n) throw new Error(`heldOutSplit: ${keys.length} keys for ${n} rows`);
  const groups: number[][] = [];
  const byKey = new Map<string, number[]>();
  for (let i = 0; i < n; i++) {
    const key = keys?.[i];
    const group = key === undefined ? undefined : byKey.get(key);
    if (group) group.push(i);
    else {
      const fresh = [i];
      groups.push(fresh);
      if (key !== undefined) byKey.set(key, fresh);
    }
  }
  if (groups.length < 2) throw new UserError(`need at least 2 different rows to hold some out for evaluation (all ${n} are the same)`);
  const rng = new Rng(seed);
  for (let i = groups.length - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [groups[i], groups[j]] = [groups[j]!, groups[i]!];
  }
  const nVal = Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
  const val: number[] = [];
  const train: number[] = [];
  // The last group always trains, so neither side is empty.
  groups.forEach((g, gi) => {
    const fits = val.length + g.length <= nVal || val.length === 0;
    (fits && gi < groups.length - 1 && val.length < nVal ? val : train).push(...g);
  });
  return { train: train.sort((a, b) => a - b), val: val.sort((a, b) => a - b) };
}

/** The split key of a conversation: everything before its last assistant reply (rows with the same prompt stay together). */
export function promptKey(messages: readonly ChatMessage[]): string {
  let last = messages.length - 1;
  while (last >= 0 && messages[last]!.role !== 'assistant') last--;
  return JSON.stringify(messages.slice(0, Math.max(0, last)).map((m) => [m.role, m.content]));
}

/** One padded batch: inputs, next-token targets (−1 where nothing is learned), its shape and learned-token count. */
export interface SftBatch {
  x: Int32Array;
  y: Int32Array;
  B: number;
  T: number;
  tokens: number;
}

/**
 * Lay examples out as one [B, T] batch, T the longest input. Each example of
 * L tokens gives L−1 inputs and targets (target j is token j+1), the target
 * kept only where token j+1 is the assistant's. Rows are right-padded: with
 * causal attention a real token never looks at the padding after it, and the
 * padding's targets are −1, which the loss skips — so padding changes nothing.
 */
export function sftBatch(examples: readonly ChatExample[]): SftBatch {
  const B = examples.length;
  const T = Math.max(1, ...examples.map((e) => e.ids.length - 1));
  const x = new Int32Array(B * T);
  const y = new Int32Array(B * T).fill(-1);
  let tokens = 0;
  examples.forEach((e, b) => {
    const L = e.ids.length - 1;
    x.set(e.ids.subarray(0, L), b * T);
    for (let j = 0; j < L; j++) {
      if (e.mask[j + 1]) {
        y[b * T + j] = e.ids[j + 1]!;
        tokens++;
      }
    }
  });
  return { x, y, B, T, tokens };
}

/**
 * Batches of similar length: examples sorted by length and cut into groups
 * of `batchSize`, so little of each batch is padding. Training draws a random
 * group each step; evaluation walks all of them.
 */
export function lengthBatches(examples: readonly ChatExample[], batchSize: number): ChatExample[][] {
  const sorted = [...examples].sort((a, b) => a.ids.length - b.ids.length || a.row - b.row);
  const out: ChatExample[][] = [];
  for (let i = 0; i < sorted.length; i += batchSize) out.push(sorted.slice(i, i + batchSize));
  return out;
}

/** A preference row as two one-turn conversations: the prompt with the chosen reply, and with the rejected one. */
export interface PreferenceExample {
  row: number;
  chosen: ChatExample;
  rejected: ChatExample;
}

/**
 * Encode `{prompt, chosen, rejected}` for the reward model and DPO: each
 * answer as the assistant's reply to the prompt, rendered with the chat
 * template; the mask marks the reply's tokens (what DPO scores).
 */
export function encodePreference(template: ChatTemplate, tokenizer: Tokenizer, p: { row: number; prompt: string; chosen: string; rejected: string }): PreferenceExample {
  const turn = (reply: string): ChatMessage[] => [
    { role: 'user', content: p.prompt },
    { role: 'assistant', content: reply },
  ];
  return { row: p.row, chosen: encodeConversation(template, tokenizer, turn(p.chosen), p.row), rejected: encodeConversation(template, tokenizer, turn(p.rejected), p.row) };
}

/** The texts of a preference row as the template renders them (for growing a vocabulary to fit). */
export function preferenceTexts(template: ChatTemplate, p: { prompt: string; chosen: string; rejected: string }): string[] {
  return [p.chosen, p.rejected].map((reply) => template.render([{ role: 'user', content: p.prompt }, { role: 'assistant', content: reply }]));
}
