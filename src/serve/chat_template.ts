/** One chat message as OpenAI's API sends it (text content only). */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'developer' | 'tool';
  content: string;
}

/**
 * attn's default chat template. A GPT trained on plain text has no chat
 * format of its own, so messages become a transcript the model can continue:
 * one line per message, `role: content`, then `assistant:` for the reply.
 *
 *     system: You are terse.
 *     user: Hi
 *     assistant:
 *
 * ("developer" is OpenAI's newer name for "system" and is written as system.)
 * The reply ends at the next line that starts a turn: `stopSequences` are
 * added to the request's own stop strings.
 */
export function renderChat(messages: readonly ChatMessage[]): string {
  const lines = messages.map((m) => `${m.role === 'developer' ? 'system' : m.role}: ${m.content}`);
  return `${lines.join('\n')}\nassistant:`;
}

/** Stop strings that end the assistant's turn in the default template. */
export const CHAT_STOP_SEQUENCES: readonly string[] = ['\nuser:', '\nsystem:'];
