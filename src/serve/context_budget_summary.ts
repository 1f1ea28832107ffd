import { createHash } from 'node:crypto';
import { renderChat } from './chat_template.js';
import type { ContextPolicy } from './context_budget.js';
import type { ServeContext } from './context.js';
import { ApiError } from './errors.js';
import { TextGeneration } from './text_generation.js';
import type { ToolMessageFields } from './tools.js';
import { messagesAsText } from './tools_prompt.js';

/**
 * Summaries of dropped turns for the context budget (context_budget.ts),
 * written greedily by the policy's summarizer model through its own
 * scheduler, and cached by the summarizer and the turns' content: a long
 * conversation drops the same oldest turns on every later request, and
 * pays for their summary once.
 */

const MAX_CACHED = 1024;
const caches = new WeakMap<ServeContext, Map<string, string>>();

export async function summarizeTurns(ctx: ServeContext, policy: ContextPolicy, turns: readonly ToolMessageFields[]): Promise<{ text: string; cached: boolean }> {
  const name = policy.summarizer!;
  const served = ctx.models.get(name);
  if (!served) throw new ApiError(500, `context_budget summarizer "${name}" is not served`, 'server_error', null, 'summarizer_missing');
  let cache = caches.get(ctx);
  if (!cache) caches.set(ctx, (cache = new Map()));
  const key = createHash('sha256').update(JSON.stringify([name, policy.summary_max_tokens, turns])).digest('hex');
  const hit = cache.get(key);
  if (hit !== undefined) {
    cache.delete(key); // most recently used goes to the end
    cache.set(key, hit);
    return { text: hit, cached: true };
  }
  const transcript = renderChat(messagesAsText(turns, null)).replace(/\nassistant:$/, '');
  const prompt = `Summarize this conversation in one or two sentences.\n${transcript}\nSummary:`;
  let ids = served.tokenizer.encode(prompt, { disallowedSpecial: [] });
  // The summarizer reads the end of the turns when they do not fit its own context.
  const room = served.model.config.block_size - policy.summary_max_tokens;
  if (ids.length > room) ids = ids.slice(ids.length - Math.max(1, room));
  const gen = new TextGeneration(served.scheduler, served.tokenizer, ids, { maxTokens: policy.summary_max_tokens, seed: 0, temperature: 0, stopTokens: served.stopTokens, stop: ['\n'] });
  const r = await gen.result;
  if (r.finishReason !== 'stop' && r.finishReason !== 'length') throw new ApiError(503, `the summarizer ${name} did not finish (${r.finishReason})`, 'server_error', null, 'summarizer_failed');
  ctx.metrics.tokensIn.inc({ model: name }, ids.length);
  ctx.metrics.tokensOut.inc({ model: name }, r.completionTokens);
  const text = r.text.trim();
  cache.set(key, text);
  while (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value!);
  return { text, cached: false };
}
