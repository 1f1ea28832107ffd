import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import type { PagedKVStats } from '../generate/paged_kv/paged_kv.js';
import { UserError } from '../util/errors.js';
import type { DecoderLM } from '../models/causal_lm.js';
import { moveToBackend } from '../nn/placement.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { ApiKeys } from './auth.js';
import { handleFeedback, handleHealth, handleLedger, handleMetrics, handleModel, handleModels } from './basic_routes.js';
import { handleCompletion, failOpenStream } from './completions.js';
import { checkConfigModels, defaultServeConfig, type ServeConfig } from './config.js';
import { DEFAULT_LIMITS, type ServeContext, type ServeLimits } from './context.js';
import type { Ledger, SemanticCache } from './contracts.js';
import { createLedger } from './economics.js';
import { handleEmbeddings } from './embeddings_route.js';
import { ApiError } from './errors.js';
import { readJsonBody, sendError } from './http_io.js';
import { createLogger, newTraceContext, requestLogFields } from './logging.js';
import { createServeMetrics, type ServeMetrics } from './metrics.js';
import { clientOf } from './guardrails/guardrails.js';
import { Ops } from './ops.js';
import { CHAT_DIALECT, TEXT_DIALECT } from './openai_format.js';
import { RecentTasks } from './recent_tasks.js';
import { RequestState } from './request_state.js';
import { createRouter } from './router.js';
import { createSemanticCache } from './semantic_cache.js';
import { loadServedAdapters } from './adapters.js';
import { loadServedModels, parseModelSpec, serveModel, type ServedModel, type ServedEmbedder } from './served_model.js';
import { withRetrieval } from './retrieval_chat.js';
import { handleVectorStores } from './vector_store_routes.js';
import { VectorStores, type VectorStoreOptions } from './vector_stores.js';

/** A model to serve: a `--model` spec (`DIR` or `NAME=DIR`), or one already in memory. */
export type ModelSource = string | { name: string; model: DecoderLM; tokenizer: Tokenizer };

export interface ServeOptions {
  models: readonly ModelSource[];
  /** Default 127.0.0.1: loopback only. */
  host?: string;
  /** Default 8000; 0 picks a free port (see AttnServer.url). */
  port?: number;
  limits?: Partial<ServeLimits>;
  /** Prices, cache and routing (config.ts); default: all free, in-memory cache, the models in order as tiers. */
  config?: ServeConfig;
  apiKeys?: readonly string[];
  logger?: Logger;
  logPrompts?: boolean;
  /** LoRA adapters over the served models: `NAME=DIR` or `NAME@BASE=DIR` (serve/adapters.ts). */
  adapters?: readonly string[];
  /** Name of the served model that embeds prompts for the semantic cache (default: each request's own model). */
  embedder?: string;
  /** Override the ledger / the cache the config asks for (tests, embedding attn in another server). */
  ledger?: Ledger;
  cache?: SemanticCache | null;
  metrics?: ServeMetrics;
  /** Vector stores to serve (`--vector-store NAME=DIR`, `--vector-store-root DIR`). */
  vectorStores?: VectorStoreOptions;
}

export interface AttnServer {
  /** http://host:port — the base URL of the OpenAI-style API is `${url}/v1`. */
  url: string;
  port: number;
  http: Server;
  context: ServeContext;
  /**
   * Graceful shutdown: stop accepting, let running requests finish for up to
   * `deadlineMs` (default 10 s), then cancel what is left, close connections
   * and the cache. Resolves when everything is closed.
   */
  close(deadlineMs?: number): Promise<void>;
}

type Handler = (ctx: ServeContext, st: RequestState, body: unknown, res: ServerResponse) => Promise<number> | number;

interface Route {
  name: string;
  method: 'GET' | 'POST';
  /** Requests whose ids prefix the response id (feedback refers to them). */
  idPrefix: string;
  handle: Handler;
}

const ROUTES: Record<string, Route> = {
  '/v1/completions': { name: 'completions', method: 'POST', idPrefix: TEXT_DIALECT.idPrefix, handle: (c, s, b, r) => handleCompletion(c, s, b, r, TEXT_DIALECT) },
  '/v1/chat/completions': { name: 'chat', method: 'POST', idPrefix: CHAT_DIALECT.idPrefix, handle: async (c, s, b, r) => handleCompletion(c, s, await withRetrieval(c, s, b, r), r, CHAT_DIALECT) },
  '/v1/embeddings': { name: 'embeddings', method: 'POST', idPrefix: 'emb-', handle: handleEmbeddings },
  '/v1/feedback': { name: 'feedback', method: 'POST', idPrefix: 'req-', handle: handleFeedback },
  '/v1/models': { name: 'models', method: 'GET', idPrefix: 'req-', handle: (c, _s, _b, r) => handleModels(c, r) },
  '/v1/ledger': { name: 'ledger', method: 'GET', idPrefix: 'req-', handle: (c, _s, _b, r) => handleLedger(c, r) },
  '/metrics': { name: 'metrics', method: 'GET', idPrefix: 'req-', handle: (c, _s, _b, r) => handleMetrics(c, r) },
};

const TASK = /^[\w.:/-]{1,64}$/;

function buildContext(opts: ServeOptions, models: Map<string, ServedModel>, embedders: Map<string, ServedEmbedder>, metrics: ServeMetrics, logger: Logger): ServeContext {
  // Sentence embedders run where the language models do (on a device backend, uploaded once).
  for (const e of embedders.values()) moveToBackend(e.model);
  const names = [...models.keys()];
  const config = opts.config ?? defaultServeConfig(names);
  checkConfigModels(config, names);
  let cache = opts.cache !== undefined ? opts.cache : createSemanticCache(config.cache);
  const embedder = cacheEmbedder(opts, config, models, embedders);
  if (cache && embedder === 'none') {
    logger.warn('semantic cache off: no sentence embedder is served (--model NAME=DIR of one trained with `attn embed train`), and a language model\'s pooled hidden states would serve unrelated prompts each other\'s answers (set cache.allow_gpt_embeddings to use them anyway)');
    void cache.close();
    cache = null;
  }
  return {
    models,
    embedders,
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
    config,
    ledger: opts.ledger ?? createLedger(config.prices, { defaultPrice: config.default_price }),
    cache,
    router: createRouter(config.routing),
    metrics,
    logger,
    logPrompts: opts.logPrompts ?? false,
    embedder: embedder === 'none' ? null : embedder,
    recentTasks: new RecentTasks(),
  };
}

/**
 * What keys the semantic cache: the served model --embedder names, else the
 * first served sentence embedder, else (with cache.allow_gpt_embeddings)
 * null for each request's own language model; 'none' when nothing may. A
 * language model named by --embedder needs the flag too: its pooled hidden
 * states do not separate meanings.
 */
function cacheEmbedder(opts: ServeOptions, config: ServeConfig, models: Map<string, ServedModel>, embedders: Map<string, ServedEmbedder>): ServedModel | ServedEmbedder | null | 'none' {
  const allowGPT = config.cache.allow_gpt_embeddings;
  if (opts.embedder !== undefined) {
    const named = models.get(opts.embedder) ?? embedders.get(opts.embedder);
    if (!named) throw new UserError(`--embedder ${opts.embedder}: not a served model (served: ${[...models.keys(), ...embedders.keys()].join(', ')})`);
    if ('scheduler' in named && !allowGPT) {
      throw new UserError(`--embedder ${opts.embedder} is a language model: its pooled hidden states do not separate meanings; serve a sentence embedder, or set cache.allow_gpt_embeddings: true in the serve config`);
    }
    return named;
  }
  const first = embedders.values().next();
  if (!first.done) return first.value;
  return allowGPT ? null : 'none';
}

/** Start `attn serve`'s HTTP server; resolves once it listens. */
export async function startServer(opts: ServeOptions): Promise<AttnServer> {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  checkLimits(limits);
  const metrics = opts.metrics ?? createServeMetrics();
  const logger = opts.logger ?? createLogger({ logPrompts: opts.logPrompts ?? false });
  const kvPool = limits.pagedKv === false ? undefined : { ...(limits.kvBlockTokens ? { blockTokens: limits.kvBlockTokens } : {}), ...(limits.kvPoolBlocks ? { blocks: limits.kvPoolBlocks } : {}) };
  const schedOpts = { maxBatch: limits.maxBatch, maxQueue: limits.maxQueue, ...(kvPool ? { kvPool } : {}) };
  const stats = (name: string) => ({
    onStep: (batch: number, ms: number) => {
      metrics.batchSize.set({ model: name }, batch);
      metrics.stepSeconds.observe({ model: name }, ms / 1000);
      metrics.stepSequences.inc({ model: name }, batch);
    },
    onQueue: (depth: number) => metrics.queueDepth.set({ model: name }, depth),
    onKvPool: (kv: PagedKVStats, preemptions: number) => {
      for (const state of ['used', 'free', 'shared', 'cached'] as const) metrics.kvBlocks.set({ model: name, state }, kv[state]);
      metrics.kvPrefixHits.set({ model: name }, kv.prefixHits);
      metrics.kvPrefixHitTokens.set({ model: name }, kv.prefixHitTokens);
      metrics.kvPreemptions.set({ model: name }, preemptions);
    },
    onSpeculative: (rows: number, drafted: number, accepted: number, emitted: number) => {
      metrics.speculativeRounds.inc({ model: name }, rows);
      metrics.speculativeDrafted.inc({ model: name }, drafted);
      metrics.speculativeAccepted.inc({ model: name }, accepted);
      metrics.speculativeEmitted.inc({ model: name }, emitted);
    },
  });
  const specs = opts.models.filter((m): m is string => typeof m === 'string');
  const { models, embedders } = specs.length > 0 ? loadServedModels(specs, schedOpts, stats) : { models: new Map<string, ServedModel>(), embedders: new Map<string, ServedEmbedder>() };
  for (const m of opts.models) {
    if (typeof m === 'string') continue;
    if (models.has(m.name) || embedders.has(m.name)) throw new UserError(`--model: two models are named "${m.name}"`);
    models.set(m.name, serveModel(m.name, m.model, m.tokenizer, schedOpts, stats));
  }
  if (models.size + embedders.size === 0) throw new UserError('attn serve needs at least one --model DIR');
  if (opts.adapters?.length) loadServedAdapters(opts.adapters, models, embedders);
  const ctx = buildContext(opts, models, embedders, metrics, logger);
  if (opts.vectorStores && (opts.vectorStores.root || opts.vectorStores.stores?.length)) {
    const dirs = new Map(specs.map(parseModelSpec).map(({ name, dir }) => [name, dir] as const));
    ctx.vectorStores = await VectorStores.create(opts.vectorStores, embedders, dirs);
  }
  if (ctx.cache && 'ready' in ctx.cache && typeof ctx.cache.ready === 'function') await (ctx.cache.ready as () => Promise<void>)();
  const ops = await Ops.create(ctx.config, metrics.registry, logger, (t) => metrics.taskLabel(t), () => ctx.ledger);
  ctx.ops = ops;
  ctx.ledger = ops.wrapLedger(ctx.ledger);

  const keys = new ApiKeys(opts.apiKeys ?? []);
  const inflight = new Set<RequestState>();
  let closing = false;
  const http = createServer((req, res) => void serveRequest(ctx, keys, req, res, inflight, () => closing));
  // Keep-alive connections idle longer than the client's pool would otherwise see resets.
  http.keepAliveTimeout = 65_000;
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((ok, fail) => {
    http.once('error', (e: NodeJS.ErrnoException) => fail(e.code === 'EADDRINUSE' ? new UserError(`port ${opts.port} is in use: pick another with --port (0 = any free port)`) : e));
    http.listen(opts.port ?? 8000, host, () => ok());
  }).catch(async (e: unknown) => {
    // Not listening: let go of Redis and the exporter, or the process would stay alive.
    await ops.close();
    await ctx.cache?.close();
    throw e;
  });
  const { port } = http.address() as AddressInfo;
  const url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
  logger.info({ url, models: [...models.keys()], api_keys: keys.enabled }, 'attn serve listening');

  let closed: Promise<void> | null = null;
  const close = (deadlineMs = 10_000): Promise<void> =>
    (closed ??= (async () => {
      closing = true;
      const stopped = new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeIdleConnections();
      // Drained means every request's handler has returned, not only every generation: a handler
      // still writes its reply's last bytes after its sequence leaves the scheduler (once the fleet
      // ledger has taken the request), and dropping the connections before that would cut it.
      const drained = Promise.all([...models.values()].map((m) => m.scheduler.drain())).then(() => handlersDone(inflight));
      const timer = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), deadlineMs).unref());
      if ((await Promise.race([drained, timer])) === 'late') {
        logger.warn({ requests: inflight.size }, 'shutdown deadline reached: cancelling what is still running');
        for (const st of inflight) st.cancel('shutdown');
        for (const m of models.values()) m.scheduler.cancelAll('shutdown');
        await Promise.race([drained, new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
      }
      // Let the handlers' last writes go out, then drop whatever connections remain.
      await new Promise<void>((resolve) => setImmediate(resolve));
      http.closeAllConnections();
      await stopped;
      await ctx.cache?.close();
      ctx.vectorStores?.close();
      await ops.close();
      logger.info('attn serve stopped');
    })());
  return { url, port, http, context: ctx, close };
}

function checkLimits(l: ServeLimits): void {
  const positive = ['maxBodyBytes', 'defaultMaxTokens', 'maxTokensCap', 'maxBatch', 'requestTimeoutMs'] as const;
  for (const k of positive) if (!(Number.isInteger(l[k]) && l[k] > 0)) throw new UserError(`serve limit ${k} must be a positive integer (got ${l[k]})`);
  if (!(Number.isInteger(l.maxQueue) && l.maxQueue >= 0)) throw new UserError(`serve limit maxQueue must be an integer ≥ 0 (got ${l.maxQueue})`);
  for (const k of ['kvBlockTokens', 'kvPoolBlocks'] as const) if (l[k] !== undefined && !(Number.isInteger(l[k]) && l[k]! > 0)) throw new UserError(`serve limit ${k} must be a positive integer (got ${l[k]})`);
  if (l.defaultMaxTokens > l.maxTokensCap) throw new UserError(`the default max_tokens (${l.defaultMaxTokens}) exceeds the cap (${l.maxTokensCap})`);
}

function modelId(path: string): string {
  try {
    return decodeURIComponent(path.slice('/v1/models/'.length));
  } catch {
    throw new ApiError(400, `Invalid model id in ${path}`, 'invalid_request_error', 'model', null);
  }
}

const newId = (prefix: string): string => `${prefix}${randomBytes(12).toString('base64url')}`;

/** One HTTP request, start to end: auth, routing, body, handler, errors, metrics and its log line. */
async function serveRequest(ctx: ServeContext, keys: ApiKeys, req: IncomingMessage, res: ServerResponse, inflight: Set<RequestState>, closing: () => boolean): Promise<void> {
  const path = (req.url ?? '/').split('?')[0]!;
  const modelPath = path.startsWith('/v1/models/') ? path : null;
  const route: Route | undefined = Object.hasOwn(ROUTES, path)
    ? ROUTES[path]
    : modelPath
      ? { name: 'model', method: 'GET', idPrefix: 'req-', handle: (c, _s, _b, r) => handleModel(c, r, modelId(modelPath)) }
      : path === '/v1/vector_stores' || path.startsWith('/v1/vector_stores/')
        ? { name: 'vector_stores', method: req.method === 'POST' ? 'POST' : 'GET', idPrefix: 'req-', handle: (c, s, b, r) => handleVectorStores(c, s, req.method ?? 'GET', path, b, r) }
        : undefined;
  const trace = newTraceContext(req.headers.traceparent as string | undefined);
  const id = newId(route?.idPrefix ?? 'req-');
  const st = new RequestState(id, trace, 'default', route?.name ?? (path === '/health' ? 'health' : 'unknown'), ctx.logger.child({ request_id: id, trace_id: trace.traceId }));
  res.setHeader('x-request-id', st.id);
  res.setHeader('traceparent', trace.traceparent);
  if (ctx.ops?.shared) res.setHeader('x-attn-replica', ctx.ops.replica);
  // Shutting down: say `Connection: close`, so that clients and balancers stop reusing this connection.
  if (closing()) res.shouldKeepAlive = false;
  inflight.add(st);
  const timeout = setTimeout(() => st.cancel('timeout'), ctx.limits.requestTimeoutMs);
  timeout.unref();
  res.on('close', () => {
    if (!res.writableFinished) st.cancel('cancelled');
  });
  let status = 500;
  try {
    if (path === '/health' && req.method === 'GET') status = handleHealth(ctx, res, closing());
    else {
      if (!route) throw new ApiError(404, `Unknown route ${req.method} ${path}`, 'invalid_request_error', null, 'not_found');
      if (req.method !== route.method) throw new ApiError(405, `${path} takes ${route.method}, not ${req.method}`, 'invalid_request_error', null, 'method_not_allowed', { allow: route.method });
      keys.check(req);
      ctx.ops?.request(st, clientOf(req));
      if (closing()) throw new ApiError(503, 'The server is shutting down', 'server_error', null, 'shutting_down');
      const task = req.headers['x-attn-task'];
      if (typeof task === 'string') {
        if (!TASK.test(task)) throw new ApiError(400, 'The x-attn-task header must be 1–64 letters, digits or _.:/-', 'invalid_request_error', null, 'invalid_task');
        st.task = task;
      }
      const body = route.method === 'POST' ? await readJsonBody(req, ctx.limits.maxBodyBytes) : undefined;
      status = await route.handle(ctx, st, body, res);
    }
  } catch (e) {
    status = answerError(st, res, e);
  } finally {
    clearTimeout(timeout);
    inflight.delete(st);
    finishRequest(ctx, st, status);
  }
}

/** Resolves once no request is being handled (polled: shutdown is rare; the timer does not by itself keep the process alive). */
async function handlersDone(inflight: ReadonlySet<RequestState>): Promise<void> {
  while (inflight.size > 0) await new Promise((resolve) => setTimeout(resolve, 5).unref());
}

function answerError(st: RequestState, res: ServerResponse, e: unknown): number {
  if (st.ended === 'cancelled' || res.destroyed) return 499; // the client is gone: nobody to answer
  const err = e instanceof ApiError ? e : new ApiError(500, 'Internal server error (the server log has the details)', 'server_error', null, 'internal_error');
  if (!(e instanceof ApiError)) st.log.error({ err: e }, 'request failed');
  if (!failOpenStream(res, err)) sendError(res, err);
  return err.status;
}

function finishRequest(ctx: ServeContext, st: RequestState, status: number): void {
  const latencyMs = st.elapsedMs;
  ctx.metrics.requests.inc({ route: st.route, model: st.model ?? '', status: String(status) });
  if (st.model && (st.route === 'completions' || st.route === 'chat') && status === 200) ctx.metrics.latency.observe({ model: st.model }, latencyMs / 1000);
  if (st.route === 'metrics' || st.route === 'health') return; // scrapes and probes would drown the log
  void ctx.ops?.finish(st, status, `attn ${st.route}`);
  const fields = { ...requestLogFields({ requestId: st.id, trace: st.trace, route: st.route, model: st.model, task: st.task, status, stream: st.stream, usage: st.usage, cost: st.cost, cached: st.cached, escalations: st.escalations, ttftMs: st.ttftMs, latencyMs, prompt: st.prompt }, ctx.logPrompts), ...ctx.ops?.logFields(st) };
  // The root logger: the fields already hold the request and trace ids the child logger would add again.
  if (status >= 500 && status !== 503) ctx.logger.error(fields, 'request');
  else ctx.logger.info(fields, 'request');
}
