import { createHash } from 'node:crypto';
import { embedTextsAsync } from '../models/embed_texts.js';
import type { ServeContext } from './context.js';
import type { CachedResponse } from './contracts.js';
import type { CompletionJob } from './completion_job.js';
import { meanPooledEmbeddingAsync } from './pooled_embedding.js';
import type { RequestState } from './request_state.js';
import { cacheThreshold } from './semantic_cache.js';
import type { ServedEmbedder, ServedModel } from './served_model.js';

/** Where a response will be stored once it has passed its check. */
export interface CacheKey {
  /** The cache's "model": the model's name and a digest of the settings that shape the answer. */
  model: string;
  embedding: Float32Array;
}

/**
 * Entries are kept per model *and* per generation settings: a prompt answered
 * with max_tokens 10, or cut at a stop string, is not the answer to the same
 * prompt with other settings. The cache sees `model#digest`.
 */
export function cacheNamespace(model: string, job: CompletionJob): string {
  const settings = [job.maxTokens, job.stop, job.responseFormat?.type ?? 'text', job.temperature, job.topP, job.topK, job.repetitionPenalty];
  return `${model}#${createHash('sha256').update(JSON.stringify(settings)).digest('hex').slice(0, 12)}`;
}

/**
 * Whether a job may use the semantic cache: one prompt, one choice, text (not
 * token ids), and greedy — a sampled request wants a fresh sample, unless it
 * (metadata.cache: true) or the config (cache.include_sampled) says otherwise.
 */
export function cacheable(ctx: ServeContext, job: CompletionJob): boolean {
  if (!ctx.cache || job.prompts.length !== 1 || job.n !== 1 || typeof job.prompts[0] !== 'string') return false;
  return job.cache ?? (job.temperature === 0 || ctx.config.cache.include_sampled);
}

/**
 * The prompt's embedding for the cache: from a sentence embedder (a served
 * one by default, or the one --embedder names; models/embed_texts.ts), else —
 * only with cache.allow_gpt_embeddings — the mean-pooled hidden states of a
 * language model (the request's own unless --embedder names another; a
 * prompt longer than its context keeps its end). null when the text cannot
 * be encoded: no cache for it.
 */
function promptEmbedding(embedder: ServedModel | ServedEmbedder, text: string): Promise<Float32Array | null> | null {
  if ('scheduler' in embedder) {
    let ids: Int32Array;
    try {
      ids = embedder.tokenizer.encode(text, { disallowedSpecial: [] });
    } catch {
      return null;
    }
    return ids.length === 0 ? null : meanPooledEmbeddingAsync(embedder.model, ids.slice(-embedder.model.config.block_size));
  }
  if (text.length === 0) return null;
  // An embedder that cannot encode the text (a character its tokenizer lacks): no cache for it.
  return embedTextsAsync(embedder.model, embedder.tokenizer, [text]).then((v) => v[0]!, () => null);
}

/**
 * Embed the prompt (promptEmbedding) and look it up for this model at the task's
 * threshold. null when the cache does not apply; a failing cache (e.g. Redis
 * away) is a miss, logged, never a failed request. The embedding is a forward
 * pass, so it runs in the model's scheduler between two decode steps (not
 * here in the handler, where several long prompts would stall every open
 * stream for all of them at once).
 */
export async function lookupCache(ctx: ServeContext, served: ServedModel, job: CompletionJob, st: RequestState): Promise<{ key: CacheKey; hit: CachedResponse | null } | null> {
  if (!cacheable(ctx, job)) return null;
  const text = job.prompts[0] as string;
  const embedding = await served.scheduler.betweenSteps(() => promptEmbedding(ctx.embedder ?? served, text));
  if (!embedding) return null;
  const key = { model: cacheNamespace(served.name, job), embedding };
  try {
    const found = await ctx.cache!.lookup(key.model, key.embedding, cacheThreshold(ctx.config.cache, st.task));
    (found ? ctx.metrics.cacheHits : ctx.metrics.cacheMisses).inc({ model: served.name });
    if (found) st.log.debug({ similarity: found.similarity }, 'semantic cache hit');
    return { key, hit: found?.response ?? null };
  } catch (e) {
    st.log.warn({ err: (e as Error).message }, 'semantic cache lookup failed; generating');
    ctx.metrics.cacheMisses.inc({ model: served.name });
    return { key, hit: null };
  }
}

export async function storeInCache(ctx: ServeContext, key: CacheKey, response: CachedResponse, st: RequestState): Promise<void> {
  try {
    await ctx.cache!.store(key.model, key.embedding, response);
  } catch (e) {
    st.log.warn({ err: (e as Error).message }, 'semantic cache store failed');
  }
}
