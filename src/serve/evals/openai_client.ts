/**
 * The smallest OpenAI-compatible client the evaluations need: one chat
 * completion, over fetch, with a timeout. Any server that speaks
 * /v1/chat/completions works, attn serve included.
 */

export interface ChatTarget {
  /** Base URL, with or without the trailing /v1. */
  url: string;
  model: string;
  apiKey?: string | undefined;
}

export interface ChatReply {
  text: string;
  usage?: { prompt_tokens: number; completion_tokens: number };
  ms: number;
}

export function chatUrl(base: string): string {
  const b = base.replace(/\/+$/, '');
  return `${/\/v1$/.test(b) ? b : `${b}/v1`}/chat/completions`;
}

export async function chat(target: ChatTarget, messages: Array<{ role: string; content: string }>, opts: { maxTokens?: number; temperature?: number; timeoutMs?: number; extra?: Record<string, unknown> } = {}): Promise<ChatReply> {
  const started = performance.now();
  const res = await fetch(chatUrl(target.url), {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(target.apiKey ? { authorization: `Bearer ${target.apiKey}` } : {}) },
    body: JSON.stringify({ model: target.model, messages, temperature: opts.temperature ?? 0, ...(opts.maxTokens ? { max_tokens: opts.maxTokens } : {}), ...opts.extra }),
    signal: AbortSignal.timeout(opts.timeoutMs ?? 60_000),
  });
  const body = (await res.json().catch(() => null)) as { choices?: Array<{ message?: { content?: string | null } }>; usage?: ChatReply['usage']; error?: { message?: string } } | null;
  if (!res.ok) throw new Error(`${chatUrl(target.url)}: HTTP ${res.status}${body?.error?.message ? `: ${body.error.message}` : ''}`);
  const text = body?.choices?.[0]?.message?.content;
  if (typeof text !== 'string') throw new Error(`${chatUrl(target.url)}: the response has no choices[0].message.content`);
  return { text, ...(body?.usage ? { usage: body.usage } : {}), ms: performance.now() - started };
}
