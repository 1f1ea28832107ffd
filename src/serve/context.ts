import type { Logger } from 'pino';
import type { ServeConfig } from './config.js';
import type { Ledger, SemanticCache } from './contracts.js';
import type { ServeMetrics } from './metrics.js';
import type { Ops } from './ops.js';
import type { TieredRouter } from './router.js';
import type { RecentTasks } from './recent_tasks.js';
import type { ServedEmbedder, ServedModel } from './served_model.js';
import type { VectorStores } from './vector_stores.js';

/** What protects the server from its clients; every limit has a flag in `attn serve`. */
export interface ServeLimits {
  /** Largest request body, bytes (413 beyond). */
  maxBodyBytes: number;
  /** max_tokens when a request gives none. */
  defaultMaxTokens: number;
  /** Largest max_tokens accepted (400 beyond). */
  maxTokensCap: number;
  /** Sequences decoding together per model. */
  maxBatch: number;
  /** Sequences waiting per model before 429. */
  maxQueue: number;
  /** A request still running after this long ends with 504 (or an error event when streaming). */
  requestTimeoutMs: number;
  /** Keep each model's KV cache in one pool of blocks shared by its sequences (generate/paged_kv/); false: a contiguous cache per sequence. */
  pagedKv?: boolean;
  /** Token slots per KV block. */
  kvBlockTokens?: number;
  /** KV blocks per model (absent: a default from the batch, the context and a memory ceiling, generate/paged_kv/paged_kv.ts). */
  kvPoolBlocks?: number;
}

export const DEFAULT_LIMITS: ServeLimits = {
  maxBodyBytes: 1 << 20,
  defaultMaxTokens: 256,
  maxTokensCap: 4096,
  maxBatch: 64,
  maxQueue: 256,
  requestTimeoutMs: 120_000,
};

/** Everything a request handler needs, built once by the server. */
export interface ServeContext {
  models: ReadonlyMap<string, ServedModel>;
  /** Embedder models: /v1/embeddings only. */
  embedders: ReadonlyMap<string, ServedEmbedder>;
  limits: ServeLimits;
  config: ServeConfig;
  ledger: Ledger;
  /** null when the semantic cache is off. */
  cache: SemanticCache | null;
  router: TieredRouter;
  metrics: ServeMetrics;
  logger: Logger;
  logPrompts: boolean;
  /**
   * What embeds prompts for the semantic cache: a served sentence embedder
   * (the default when one is served), or — only with
   * cache.allow_gpt_embeddings — a language model's mean-pooled hidden
   * states; null: each request's own model (also only with that flag).
   */
  embedder: ServedModel | ServedEmbedder | null;
  /** Task type of recent request ids, for counting feedback by task. */
  recentTasks: RecentTasks;
  /** Vector stores for /v1/vector_stores and retrieval in chat (absent: none served). */
  vectorStores?: VectorStores | null;
  /** Guardrails, the fleet's shared state, traces, live judging (ops.ts); absent in contexts built without a server. */
  ops?: Ops;
}
