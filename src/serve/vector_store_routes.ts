import type { ServerResponse } from 'node:http';
import { z } from 'zod';
import type { Retrieved } from '../rag/retriever.js';
import type { ServeContext } from './context.js';
import { ApiError } from './errors.js';
import { sendJson } from './http_io.js';
import { usageOf } from './openai_format.js';
import type { RequestState } from './request_state.js';
import { validate } from './validation.js';
import { isSearchMode, type OpenStore, type VectorStores } from './vector_stores.js';

/**
 * OpenAI's vector-store endpoints, as far as attn implements them:
 *   GET  /v1/vector_stores                 list
 *   POST /v1/vector_stores                 create {name, attn_embedder?}
 *   GET  /v1/vector_stores/{id}            retrieve
 *   GET  /v1/vector_stores/{id}/files      the indexed files
 *   POST /v1/vector_stores/{id}/files      attn extension: {filename, content} (there is no /v1/files upload)
 *   POST /v1/vector_stores/{id}/search     {query, max_num_results?, attn_mode?: bm25|dense|hybrid}
 * Unknown ids are 404s; searches are timed in /metrics and charged in the ledger.
 */

const CreateSchema = z.object({
  name: z.string().min(1).max(256).nullish(),
  /** Extension: which served sentence embedder indexes the store (default: the first). */
  attn_embedder: z.string().min(1).nullish(),
});

const FileSchema = z.object({
  filename: z.string({ required_error: 'is required (attn serve has no /v1/files: send {filename, content})' }).min(1).max(1024),
  content: z.string({ required_error: 'is required: the document text' }).min(1, 'must not be empty'),
});

const SearchSchema = z.object({
  query: z.string({ required_error: 'is required', invalid_type_error: 'must be a string' }),
  max_num_results: z.number().int().min(1).max(50).nullish(),
  /** Extension: the search mode (default hybrid). */
  attn_mode: z.unknown().refine((m) => m == null || isSearchMode(m), { message: 'must be "bm25", "dense" or "hybrid"' }),
});

function storeObject(s: OpenStore, fileCounts?: { files: number; chunks: number }) {
  return {
    id: s.id,
    object: 'vector_store',
    name: s.name,
    created_at: s.createdAt,
    status: 'completed',
    ...(fileCounts ? { file_counts: { in_progress: 0, completed: fileCounts.files, failed: 0, cancelled: 0, total: fileCounts.files }, attn_chunks: fileCounts.chunks } : {}),
  };
}

async function counts(s: OpenStore) {
  const files = await s.retriever.store.files();
  return { files: files.length, chunks: files.reduce((n, f) => n + f.chunks, 0) };
}

export function searchResult(r: Retrieved) {
  return {
    file_id: r.chunk.source,
    filename: r.chunk.source,
    score: r.score,
    attributes: { chunk_id: r.chunk.id, start: r.chunk.start, end: r.chunk.end, rank: r.rank },
    content: [{ type: 'text', text: r.chunk.text }],
  };
}

/** Charge a retrieval to the ledger and the token counters (the query's tokens, at the embedder's price). */
export function accountRetrieval(ctx: ServeContext, st: RequestState, s: OpenStore, queryTokens: number, id = st.id): void {
  const usage = usageOf(queryTokens, 0);
  const cost = ctx.ledger.record({ id, model: s.embedderName, task: st.task, usage, cached: false, escalations: 0 });
  ctx.metrics.tokensIn.inc({ model: s.embedderName }, queryTokens);
  ctx.metrics.cost.inc({ model: s.embedderName, task: ctx.metrics.taskLabel(st.task) }, cost);
}

export function vectorStoresOf(ctx: ServeContext): VectorStores {
  if (!ctx.vectorStores) throw new ApiError(404, 'This server serves no vector stores: start attn serve with --vector-store NAME=DIR or --vector-store-root DIR', 'invalid_request_error', null, 'not_found');
  return ctx.vectorStores;
}

/** Every /v1/vector_stores… request; returns the HTTP status. */
export async function handleVectorStores(ctx: ServeContext, st: RequestState, method: string, path: string, body: unknown, res: ServerResponse): Promise<number> {
  const stores = vectorStoresOf(ctx);
  const parts = path.split('/').slice(3).map((p) => {
    try {
      return decodeURIComponent(p);
    } catch {
      throw new ApiError(400, `Invalid vector store path ${path}`, 'invalid_request_error', null, null);
    }
  });
  const [id, sub, extra] = parts;
  const wrong = (allow: string) => new ApiError(405, `${path} takes ${allow}, not ${method}`, 'invalid_request_error', null, 'method_not_allowed', { allow });
  if (extra !== undefined) throw new ApiError(404, `Unknown route ${method} ${path}`, 'invalid_request_error', null, 'not_found');
  if (id === undefined || id === '') {
    if (method === 'GET') {
      const data = await Promise.all(stores.list().map(async (s) => storeObject(s, await counts(s))));
      sendJson(res, 200, { object: 'list', data, has_more: false });
      return 200;
    }
    if (method !== 'POST') throw wrong('GET, POST');
    const r = validate(CreateSchema, body ?? {});
    const s = await stores.createStore(r.name ?? 'vector store', r.attn_embedder ?? undefined);
    sendJson(res, 200, storeObject(s, { files: 0, chunks: 0 }));
    return 200;
  }
  const s = stores.get(id);
  if (sub === undefined) {
    if (method !== 'GET') throw wrong('GET');
    sendJson(res, 200, storeObject(s, await counts(s)));
    return 200;
  }
  if (sub === 'files') {
    if (method === 'GET') {
      const data = (await s.retriever.store.files()).map((f) => ({ id: f.source, object: 'vector_store.file', vector_store_id: s.id, status: 'completed', attn_chunks: f.chunks, attn_hash: f.fileHash }));
      sendJson(res, 200, { object: 'list', data, has_more: false });
      return 200;
    }
    if (method !== 'POST') throw wrong('GET, POST');
    const r = validate(FileSchema, body);
    const { chunks, unchanged } = await stores.addFile(s, r.filename, r.content);
    sendJson(res, 200, { id: r.filename, object: 'vector_store.file', vector_store_id: s.id, status: 'completed', created_at: Math.floor(Date.now() / 1000), usage_bytes: Buffer.byteLength(r.content), attn_chunks: chunks, attn_unchanged: unchanged });
    return 200;
  }
  if (sub === 'search') {
    if (method !== 'POST') throw wrong('POST');
    const r = validate(SearchSchema, body);
    const mode = isSearchMode(r.attn_mode) ? r.attn_mode : 'hybrid';
    const { results, queryTokens } = await stores.search(s, r.query, mode, r.max_num_results ?? 10, ctx.metrics);
    st.model = s.embedderName;
    accountRetrieval(ctx, st, s, queryTokens);
    sendJson(res, 200, { object: 'vector_store.search_results.page', search_query: r.query, data: results.map(searchResult), has_more: false, next_page: null });
    return 200;
  }
  throw new ApiError(404, `Unknown route ${method} ${path}`, 'invalid_request_error', null, 'not_found');
}
