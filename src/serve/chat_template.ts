import { ChatTemplate } from '../chat/template.js';
import { HFTokenizer } from '../tokenizers/hf/pipeline.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

/** One chat message as OpenAI's API sends it (text content only). */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'developer' | 'tool';
  content: string;
}

/**
 * The model's own chat template, when its directory has one
 * (tokenizer_config.json's chat_template, as Hugging Face ships Llama, Qwen,
 * Gemma): /v1/chat/completions then renders messages in the model's format
 * and stops at its end-of-turn tokens. Null for models without one, which
 * get attn's plain transcript below.
 */
export function modelChatTemplate(tokenizer: Tokenizer, model: string): ChatTemplate | null {
  if (!(tokenizer instanceof HFTokenizer) || tokenizer.config.chat_template === undefined) return null;
  return ChatTemplate.fromTokenizerConfig(tokenizer.config, `model ${model}: tokenizer_config.json`);
}

/**
 * attn's plain chat template. A GPT trained on plain text has no chat
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
