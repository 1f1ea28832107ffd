import { UserError } from '../util/errors.js';

/**
 * One chat message. `content` is text; other fields a template may read
 * (tool_calls, name, tool_call_id) are passed through to it as they are.
 */
export interface ChatMessage {
  role: string;
  content: string;
}

/** Check that `raw` is an array of {role, content} with string role and content: one clear line otherwise. */
export function parseChatMessages(raw: unknown, source: string): ChatMessage[] {
  if (!Array.isArray(raw)) throw new UserError(`${source}: expected an array of messages [{"role": …, "content": …}, …]`);
  if (raw.length === 0) throw new UserError(`${source}: no messages`);
  return raw.map((m, i) => {
    if (typeof m !== 'object' || m === null || Array.isArray(m)) throw new UserError(`${source}: message ${i} is not an object {"role": …, "content": …}`);
    const o = m as Record<string, unknown>;
    if (typeof o.role !== 'string' || o.role === '') throw new UserError(`${source}: message ${i} needs a "role" string (system, user, assistant, …)`);
    if (typeof o.content !== 'string') throw new UserError(`${source}: message ${i} needs a "content" string`);
    return o as unknown as ChatMessage;
  });
}
