/**
 * attn serve as a library: start the OpenAI-compatible server in-process, or
 * use its pieces (the continuous-batching scheduler, the chat template, the
 * mean-pooled embedding). The economics, cache, routing, metrics and logging
 * modules are re-exported from seam_implementations.ts.
 */
export { startServer, type AttnServer, type ModelSource, type ServeOptions } from './server.js';
export { DEFAULT_LIMITS, type ServeContext, type ServeLimits } from './context.js';
export { Scheduler, type SchedulerOptions, type SchedulerStats } from './scheduler.js';
export { Sequence, type FinishReason, type SequenceEvents, type SequenceParams } from './sequence.js';
export { TextGeneration, type TextResult } from './text_generation.js';
export { CHAT_STOP_SEQUENCES, renderChat, type ChatMessage } from './chat_template.js';
export { meanPooledEmbedding, meanPooledEmbeddingAsync } from './pooled_embedding.js';
export { loadServedModels, parseModelSpec, serveModel, type ServedModel } from './served_model.js';
export { ApiError } from './errors.js';
export { ApiKeys, apiKeysFrom } from './auth.js';
export { batchForward, batchStep } from '../generate/batch_step.js';
export type { CachedResponse, Ledger, LedgerReport, Price, RequestRecord, RouteRequest, Router, SemanticCache, TaskReport, Usage } from './contracts.js';
export * from './seam_implementations.js';
