import type { Usage } from './contracts.js';

/**
 * The response objects of OpenAI's two text APIs. The legacy completions API
 * carries `text` in each choice; chat carries a `message` (whole response) or
 * a `delta` (stream chunk). Everything else — ids, usage, the stream's shape —
 * is shared, so the server handles both with one pipeline and one of these.
 */
export interface Dialect {
  kind: 'text' | 'chat';
  idPrefix: string;
  object: string;
  chunkObject: string;
  /** A whole choice; a chat answer that is a tool call has `toolCalls` and no content. */
  choice(index: number, text: string, finishReason: string, toolCalls?: readonly object[]): object;
  /** A stream chunk's choice; `first` marks the first chunk of the choice (chat announces the role there). */
  chunkChoice(index: number, text: string, finishReason: string | null, first: boolean): object;
}

export const TEXT_DIALECT: Dialect = {
  kind: 'text',
  idPrefix: 'cmpl-',
  object: 'text_completion',
  chunkObject: 'text_completion',
  choice: (index, text, finishReason) => ({ index, text, logprobs: null, finish_reason: finishReason }),
  chunkChoice: (index, text, finishReason) => ({ index, text, logprobs: null, finish_reason: finishReason }),
};

export const CHAT_DIALECT: Dialect = {
  kind: 'chat',
  idPrefix: 'chatcmpl-',
  object: 'chat.completion',
  chunkObject: 'chat.completion.chunk',
  choice: (index, text, finishReason, toolCalls) => ({
    index,
    message: toolCalls?.length ? { role: 'assistant', content: null, tool_calls: toolCalls, refusal: null } : { role: 'assistant', content: text, refusal: null },
    logprobs: null,
    finish_reason: finishReason,
  }),
  chunkChoice: (index, text, finishReason, first) => ({
    index,
    delta: first ? { role: 'assistant', content: text } : finishReason !== null && text === '' ? {} : { content: text },
    logprobs: null,
    finish_reason: finishReason,
  }),
};

export interface ResponseHead {
  id: string;
  created: number;
  model: string;
}

export function completionBody(d: Dialect, head: ResponseHead, choices: Array<{ text: string; finishReason: string; toolCalls?: readonly object[] }>, usage: Usage): object {
  return {
    id: head.id,
    object: d.object,
    created: head.created,
    model: head.model,
    system_fingerprint: null,
    choices: choices.map((c, i) => d.choice(i, c.text, c.finishReason, c.toolCalls)),
    usage,
  };
}

export function chunkBody(d: Dialect, head: ResponseHead, choices: object[], usage?: Usage | null): object {
  return { id: head.id, object: d.chunkObject, created: head.created, model: head.model, system_fingerprint: null, choices, ...(usage !== undefined ? { usage } : {}) };
}

export const usageOf = (prompt: number, completion: number): Usage => ({ prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion });
