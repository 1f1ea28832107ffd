/**
 * Instruction-tuning data as people ship it: JSON Lines, one conversation a
 * row, in either of the two shapes of the OpenAI / Hugging Face world:
 *
 *   {"messages": [{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}]}
 *   {"prompt": "…", "completion": "…"}          (one user turn, one assistant turn)
 *
 * Every row is checked here, so that a bad row is one clear line naming its
 * row number (1-based, as an editor shows it) before any training starts.
 */
import type { ChatMessage } from '../chat/messages.js';
import { UserError } from '../util/errors.js';

/** The roles a conversation may use; the loss is taken on `assistant` turns only. */
export const CHAT_ROLES = ['system', 'user', 'assistant', 'tool'] as const;

/** The non-empty lines of a JSON Lines text, each parsed, with its 1-based line number. */
export function parseJsonLines(text: string, source: string): Array<{ row: number; value: unknown }> {
  const out: Array<{ row: number; value: unknown }> = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    try {
      out.push({ row: i + 1, value: JSON.parse(line) });
    } catch (e) {
      throw new UserError(`${source}: row ${i + 1} is not valid JSON: ${(e as Error).message}`);
    }
  });
  if (out.length === 0) throw new UserError(`${source}: no rows`);
  return out;
}

/** One conversation row: its messages and where it came from. */
export interface ChatRow {
  row: number;
  messages: ChatMessage[];
}

/** Check one row (either shape) and return it as messages. */
export function parseChatRow(value: unknown, row: number, source: string): ChatRow {
  const where = `${source}: row ${row}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new UserError(`${where} must be an object with "messages" or "prompt"/"completion"`);
  const o = value as Record<string, unknown>;
  let messages: ChatMessage[];
  if ('messages' in o) {
    if (!Array.isArray(o.messages) || o.messages.length === 0) throw new UserError(`${where}: "messages" must be a non-empty array`);
    messages = o.messages.map((m, i) => {
      const msg = m as Record<string, unknown> | null;
      if (typeof msg !== 'object' || msg === null || typeof msg.role !== 'string' || typeof msg.content !== 'string') {
        throw new UserError(`${where}: message ${i + 1} needs "role" and "content" strings`);
      }
      if (!(CHAT_ROLES as readonly string[]).includes(msg.role)) {
        throw new UserError(`${where}: message ${i + 1} has unknown role ${JSON.stringify(msg.role)} (expected one of ${CHAT_ROLES.join(', ')})`);
      }
      return { role: msg.role, content: msg.content };
    });
  } else if ('prompt' in o || 'completion' in o) {
    if (typeof o.prompt !== 'string' || typeof o.completion !== 'string') throw new UserError(`${where}: "prompt" and "completion" must both be strings`);
    messages = [
      { role: 'user', content: o.prompt },
      { role: 'assistant', content: o.completion },
    ];
  } else {
    throw new UserError(`${where} has neither "messages" nor "prompt"/"completion"`);
  }
  if (!messages.some((m) => m.role === 'assistant')) throw new UserError(`${where} has no assistant turn: there is nothing to learn from it`);
  return { row, messages };
}

/** Check a whole instruction file's text (`source` names it in messages). */
export function parseChatRows(text: string, source: string): ChatRow[] {
  return parseJsonLines(text, source).map(({ row, value }) => parseChatRow(value, row, source));
}
