/**
 * The serving modules behind the seams of contracts.ts: config, economics,
 * semantic cache, router, metrics and logging. The server wires them; each
 * can be used (and tested) alone.
 */
export {
  CacheSettingsSchema,
  PriceSchema,
  RoutingRuleSchema,
  RoutingSchema,
  ServeConfigSchema,
  checkConfigModels,
  defaultServeConfig,
  loadServeConfig,
  parseServeConfig,
  priceOf,
  type CacheSettings,
  type RoutingConfig,
  type RoutingRule,
  type ServeConfig,
  type ServeConfigInput,
} from './config.js';
export { FREE, OTHER_TASK, createLedger, formatReport, requestCost, type LedgerOptions } from './economics.js';
export {
  MemorySemanticCache,
  RedisSemanticCache,
  SIMILARITY_SLACK,
  cacheThreshold,
  cosine,
  createSemanticCache,
  normalize,
  type MemoryCacheOptions,
  type RedisCacheOptions,
} from './semantic_cache.js';
export { checkResponse, createRouter, runTiers, startTier, type CheckResult, type ResponseFormat, type TieredResult, type TieredRouter } from './router.js';
export { LATENCY_BUCKETS, MAX_TASK_LABELS, createServeMetrics, type ServeMetrics } from './metrics.js';
export {
  createLogger,
  newTraceContext,
  parseTraceparent,
  requestLogFields,
  type LoggerOptions,
  type RequestLogInfo,
  type TraceContext,
  type TraceParent,
} from './logging.js';
