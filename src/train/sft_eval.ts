/**
 * Exact-match evaluation of a chat model: for each held-out conversation the
 * model is given everything before its last assistant turn (rendered with the
 * template, ending with the assistant prompt), writes a reply greedily until
 * its end-of-turn marker, and scores 1 when the reply equals the reference
 * (surrounding whitespace aside). Greedy, so the number is reproducible.
 */
import { chatTemplateOf, stopTokenIds } from '../chat/for_tokenizer.js';
import type { ChatMessage } from '../chat/messages.js';
import type { CausalLM } from '../models/causal_lm.js';
import { generateText } from '../generate/stream.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { lastTurn } from './sft_data.js';

export interface ReplyCheck {
  prompt: string;
  expected: string;
  reply: string;
  ok: boolean;
}

/**
 * How a reply compares with the reference: right; the right answer but no
 * stop after it (the end marker was not learned); stopped early inside the
 * answer; nothing at all; or a different answer.
 */
export type ReplyOutcome = 'ok' | 'runs_on' | 'cut_short' | 'empty' | 'wrong';

export function replyOutcome(reply: string, expected: string): ReplyOutcome {
  if (reply === expected) return 'ok';
  if (reply === '') return 'empty';
  if (reply.startsWith(expected)) return 'runs_on';
  if (expected.startsWith(reply)) return 'cut_short';
  return 'wrong';
}

/**
 * Tokens to let a greedy reply run: the longest expected answer, then the
 * end-of-turn marker, then `slack` more to see a reply that runs on. The
 * marker is one token for a BPE tokenizer with added specials but ten
 * (`<|im_end|>`) for the character tokenizer; a budget of "answer + 8" cut
 * every 46-character refusal off inside its marker, so none was scored right.
 */
export function replyBudget(tokenizer: Tokenizer, answers: readonly string[], slack = 8): number {
  const count = (s: string): number => tokenizer.encode(s, { allowedSpecial: 'all' }).length;
  const marker = Math.max(0, ...chatTemplateOf(tokenizer).stopTokens.map(count));
  return Math.max(0, ...answers.map(count)) + marker + slack;
}

/** Greedy replies to conversations (each ending before an assistant turn), `batch` at a time. */
export async function chatReplies(model: CausalLM, tokenizer: Tokenizer, prompts: readonly string[], maxNewTokens: number, batch = 32): Promise<string[]> {
  const template = chatTemplateOf(tokenizer);
  const out: string[] = [];
  for (let i = 0; i < prompts.length; i += batch) {
    const chunk = prompts.slice(i, i + batch);
    const replies = await generateText(model, tokenizer, chunk, {
      maxNewTokens, greedy: true, stop: template.stopTokens, stopTokens: stopTokenIds(template, tokenizer), longPrompt: 'error',
    });
    out.push(...replies.map((r) => r.trim()));
  }
  return out;
}

/** Exact-match rate of the model's replies to the last assistant turn of each conversation. */
export async function exactMatch(model: CausalLM, tokenizer: Tokenizer, conversations: ReadonlyArray<readonly ChatMessage[]>): Promise<{ rate: number; checks: ReplyCheck[] }> {
  const template = chatTemplateOf(tokenizer);
  const turns = conversations.map((m) => lastTurn(template, m));
  const replies = await chatReplies(model, tokenizer, turns.map((t) => t.prompt), replyBudget(tokenizer, turns.map((t) => t.answer), 16));
  const checks = turns.map((t, i) => ({ prompt: t.prompt, expected: t.answer.trim(), reply: replies[i]!, ok: replies[i] === t.answer.trim() }));
  return { rate: checks.filter((c) => c.ok).length / Math.max(1, checks.length), checks };
}
