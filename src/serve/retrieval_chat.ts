import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import { buildGroundedPrompt, type Source } from '../rag/grounded_prompt.js';
import type { ServeContext } from './context.js';
import { invalidParam } from './errors.js';
import type { RequestState } from './request_state.js';
import { validate } from './validation.js';
import { accountRetrieval, vectorStoresOf } from './vector_store_routes.js';
import { isSearchMode } from './vector_stores.js';

/**
 * Chat completions that retrieve (an attn extension of the request):
 *   "attn_retrieval": {"vector_store_id": "docs", "k": 4, "mode": "hybrid"}
 * The last user message is the query; the passages found go into a system
 * message placed first, as many as fit the model's context after the
 * messages and max_tokens; the sources used come back in the response as
 * `attn_sources` (and, for a stream, in the `x-attn-sources` header).
 */

const RetrievalSchema = z.object({
  vector_store_id: z.string({ required_error: 'is required' }).min(1),
  k: z.number().int().min(1).max(50).nullish(),
  mode: z.unknown().refine((m) => m == null || isSearchMode(m), { message: 'must be "bm25", "dense" or "hybrid"' }),
});

/** The sources each request used, for the completion's response body. */
const used = new WeakMap<RequestState, Source[]>();

/** `attn_sources` for a completion's JSON body, when the request retrieved. */
export function retrievalFields(st: RequestState): { attn_sources?: Source[] } {
  const s = used.get(st);
  return s ? { attn_sources: s } : {};
}

type Message = { role: string; content?: string | Array<{ type: string; text: string }> | null };
const textOf = (m: Message): string => (typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text).join(''));

/** Rewrite a chat request's body with retrieved passages; other requests pass through unchanged. */
export async function withRetrieval(ctx: ServeContext, st: RequestState, body: unknown, res: ServerResponse): Promise<unknown> {
  if (typeof body !== 'object' || body === null || !('attn_retrieval' in body) || (body as { attn_retrieval?: unknown }).attn_retrieval == null) return body;
  const b = body as Record<string, unknown>;
  const r = validate(z.object({ attn_retrieval: RetrievalSchema }), b).attn_retrieval;
  const s = vectorStoresOf(ctx).get(r.vector_store_id);
  const messages = Array.isArray(b.messages) ? (b.messages as Message[]) : [];
  const question = [...messages].reverse().find((m) => m?.role === 'user');
  if (!question || textOf(question).trim() === '') throw invalidParam('messages', 'attn_retrieval needs a user message with text: the last one is the query');
  const mode = isSearchMode(r.mode) ? r.mode : 'hybrid';
  const k = r.k ?? 4;
  const searchStart = performance.now();
  const { results, queryTokens } = await vectorStoresOf(ctx).search(s, textOf(question), mode, k, ctx.metrics);
  const searchEnd = performance.now();
  accountRetrieval(ctx, st, s, queryTokens, `${st.id}:retrieval`);
  // The context budget: the model's window less the answer and the conversation (with some room for the chat template's tokens).
  const served = typeof b.model === 'string' ? ctx.models.get(b.model) : undefined;
  const maxTokens = Number(b.max_completion_tokens ?? b.max_tokens ?? ctx.limits.defaultMaxTokens);
  let budget = Number.POSITIVE_INFINITY;
  let count = (t: string) => t.split(/\s+/).length;
  if (served) {
    count = (t: string) => served.tokenizer.encode(t, { disallowedSpecial: [] }).length;
    const conversation = messages.reduce((n, m) => n + count(textOf(m)) + 8, 0);
    budget = served.model.config.block_size - maxTokens - conversation;
  }
  const g = buildGroundedPrompt(textOf(question), results, count, budget);
  used.set(st, g.sources);
  // The trace's `retrieval` span: the search itself, with what it found and how much of it fit the context.
  ctx.ops?.stage(st, 'retrieval', searchStart, searchEnd, {
    'attn.retrieval.vector_store_id': r.vector_store_id,
    'attn.retrieval.mode': mode,
    'attn.retrieval.k': k,
    'attn.retrieval.query_tokens': queryTokens,
    'attn.retrieval.results': results.length,
    'attn.retrieval.sources_used': g.sources.length,
    'attn.retrieval.source_ids': g.sources.map((x) => x.id),
  });
  // Headers must be ASCII: JSON with every other character escaped.
  res.setHeader('x-attn-sources', JSON.stringify(g.sources.map((x) => ({ id: x.id, source: x.source, start: x.start, end: x.end }))).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`));
  if (g.context === '') return body;
  const { attn_retrieval: _, ...rest } = b;
  return { ...rest, messages: [{ role: 'system', content: g.context }, ...messages] };
}
