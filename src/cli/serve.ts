import { Command, Option } from 'commander';
import { pino } from 'pino';
import { DEFAULT_BLOCK_TOKENS } from '../generate/paged_kv/paged_kv.js';
import { UserError } from '../util/errors.js';
import { apiKeysFrom } from '../serve/auth.js';
import { defaultServeConfig, loadServeConfig, parseServeConfig, type ServeConfig } from '../serve/config.js';
import { DEFAULT_LIMITS } from '../serve/context.js';
import { formatReport } from '../serve/economics.js';
import { printFleetReport } from '../serve/fleet_report.js';
import type { LedgerReport } from '../serve/contracts.js';
import { createLogger } from '../serve/logging.js';
import { isEmbedderDir, parseModelSpec } from '../serve/served_model.js';
import { startServer } from '../serve/server.js';
import { useBackendAsync, withBackendFlags } from './backend_flags.js';
import { int, natural } from './flags.js';
import { checkDirPath } from './out_dir.js';

interface ServeCliOptions {
  model?: string[];
  adapter?: string[];
  vectorStore?: string[];
  vectorStoreRoot?: string;
  host: string;
  port: number;
  config?: string;
  /** A redis:// URL, or false for --no-cache. */
  cache?: string | boolean;
  embedder?: string;
  apiKey?: string[];
  maxBodyBytes: number;
  maxTokens: number;
  maxTokensCap: number;
  maxBatch: number;
  maxQueue: number;
  requestTimeout: number;
  pagedKv: boolean;
  kvBlockTokens: number;
  kvPoolBlocks?: number;
  shutdownTimeout: number;
  logPrompts?: boolean;
  logLevel: string;
  report?: boolean;
  url: string;
  fleet?: string;
  namespace?: string;
  json?: boolean;
  backend?: string;
  threads?: number;
}

const collect = (v: string, prev: string[] = []) => [...prev, v];

/** The config file (or the defaults, routing over the served language models), with --cache / --no-cache applied. */
function serveConfig(o: ServeCliOptions, names: string[]): ServeConfig {
  const config = o.config ? loadServeConfig(o.config) : defaultServeConfig(names);
  if (o.cache === false) return { ...config, cache: { ...config.cache, enabled: false } };
  if (typeof o.cache === 'string') return parseServeConfig({ ...config, cache: { ...config.cache, enabled: true, url: o.cache } }, '--cache');
  return config;
}

async function runServe(o: ServeCliOptions): Promise<void> {
  if (o.report && (o.fleet || (o.config && loadServeConfig(o.config).fleet))) return printFleetReport(o.fleet ?? loadServeConfig(o.config!).fleet!.redis_url, o.namespace ?? (o.config ? loadServeConfig(o.config).fleet?.namespace : undefined) ?? 'attn', o.json ?? false);
  if (o.report) return printReport(o);
  if (!o.model?.length) throw new UserError('attn serve needs at least one --model DIR (or --report to print a running server\'s costs)');
  if (o.port < 0 || o.port > 65535) throw new UserError(`--port must be 0–65535, got ${o.port}`);
  if (o.vectorStoreRoot !== undefined) checkDirPath(o.vectorStoreRoot, '--vector-store-root');
  await useBackendAsync(o);
  // Sentence embedders serve /v1/embeddings only: "auto" routes over the language models.
  const names = o.model.map(parseModelSpec).filter(({ dir }) => !isEmbedderDir(dir)).map(({ name }) => name);
  const logger = createLogger({ level: o.logLevel as pino.Level, logPrompts: o.logPrompts ?? false, destination: pino.destination(2) });
  const server = await startServer({
    models: o.model,
    ...(o.adapter ? { adapters: o.adapter } : {}),
    host: o.host,
    port: o.port,
    config: serveConfig(o, names),
    apiKeys: apiKeysFrom(o.apiKey),
    logger,
    logPrompts: o.logPrompts ?? false,
    ...(o.embedder !== undefined ? { embedder: o.embedder } : {}),
    vectorStores: { stores: o.vectorStore ?? [], ...(o.vectorStoreRoot ? { root: o.vectorStoreRoot } : {}) },
    limits: {
      maxBodyBytes: o.maxBodyBytes,
      defaultMaxTokens: o.maxTokens,
      maxTokensCap: o.maxTokensCap,
      maxBatch: o.maxBatch,
      maxQueue: o.maxQueue,
      requestTimeoutMs: o.requestTimeout * 1000,
      pagedKv: o.pagedKv,
      kvBlockTokens: o.kvBlockTokens,
      ...(o.kvPoolBlocks !== undefined ? { kvPoolBlocks: o.kvPoolBlocks } : {}),
    },
  });
  process.stdout.write(`attn serve: ${server.url}/v1  (models: ${[...server.context.models.keys()].join(', ')}; Ctrl-C to stop)\n`);
  const stop = (signal: string) => {
    logger.info({ signal, deadline_s: o.shutdownTimeout }, 'shutting down');
    void server.close(o.shutdownTimeout * 1000).then(() => process.exit(0));
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}

/** `attn serve --report`: the cost report of a running server (GET /v1/ledger). */
async function printReport(o: ServeCliOptions): Promise<void> {
  const key = apiKeysFrom(o.apiKey)[0];
  let res: Response;
  try {
    res = await fetch(new URL('/v1/ledger', o.url), { headers: key ? { authorization: `Bearer ${key}` } : {} });
  } catch (e) {
    throw new UserError(`cannot reach ${o.url}: ${(e as Error).cause instanceof Error ? ((e as Error).cause as Error).message : (e as Error).message}`);
  }
  const body = (await res.json().catch(() => null)) as (LedgerReport & { error?: { message: string } }) | null;
  if (!res.ok || !body) throw new UserError(`${o.url}: ${body?.error?.message ?? `HTTP ${res.status}`}`);
  process.stdout.write(o.json ? `${JSON.stringify(body)}\n` : formatReport(body));
}

export function serveCommand(): Command {
  const d = DEFAULT_LIMITS;
  return withBackendFlags(new Command('serve'), { webgpu: true })
    .description('serve models over HTTP with an OpenAI-compatible API (completions, chat, embeddings), continuous batching, metrics and cost accounting')
    .option('--model <dir>', 'model directory to serve (a GPT, Llama, Qwen2 or Mistral; ours or Hugging Face\'s), DIR or NAME=DIR (repeatable; the name defaults to the directory name)', collect)
    .option('--adapter <spec>', 'LoRA adapter (PEFT directory) served over a --model: NAME=DIR, or NAME@BASE=DIR with several models (repeatable; requests choose it by model name, all share one batch)', collect)
    .option('--vector-store <spec>', 'a store made by `attn rag index`, served as NAME=DIR on /v1/vector_stores/NAME and for chat retrieval (repeatable; see docs/rag.md)', collect)
    .option('--vector-store-root <dir>', 'directory for stores created with POST /v1/vector_stores (its existing stores are served too)')
    .option('--host <host>', 'address to bind (loopback by default; 0.0.0.0 exposes the server to the network)', '127.0.0.1')
    .option('--port <n>', 'port (0 = any free port; the URL is printed)', int, 8000)
    .option('--config <file>', 'serve config JSON: prices, semantic cache, routing tiers (docs/serve.md)')
    .option('--cache <url>', 'semantic cache in Redis at this redis:// URL (default: in memory)')
    .option('--no-cache', 'turn the semantic cache off')
    .option('--embedder <name>', 'served model that embeds prompts for the semantic cache (default: the first served sentence embedder; a language model\'s pooled hidden states need cache.allow_gpt_embeddings in --config)')
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" (repeatable; also ATTN_API_KEYS, comma-separated)', collect)
    .option('--max-body-bytes <n>', 'largest request body (413 beyond)', int, d.maxBodyBytes)
    .option('--max-tokens <n>', 'max_tokens when a request gives none', int, d.defaultMaxTokens)
    .option('--max-tokens-cap <n>', 'largest max_tokens accepted (400 beyond)', int, d.maxTokensCap)
    .option('--max-batch <n>', 'sequences decoding together per model', int, d.maxBatch)
    .option('--max-queue <n>', 'requests waiting per model before 429', int, d.maxQueue)
    .option('--kv-block-tokens <n>', 'token slots per block of the paged KV cache', int, DEFAULT_BLOCK_TOKENS)
    .option('--kv-pool-blocks <n>', 'KV cache blocks per model (default: --max-batch full contexts, at most 1 GiB; a request that cannot fit alone gets a 400 naming the limit)', int)
    .option('--no-paged-kv', 'a contiguous KV cache per request, sized for its longest possible length, instead of the shared block pool (no prefix sharing)')
    .option('--request-timeout <s>', 'seconds a request may run (504 after)', int, d.requestTimeoutMs / 1000)
    .option('--shutdown-timeout <s>', 'on SIGTERM/SIGINT, seconds to let running requests finish before cancelling them', natural, 10)
    .option('--log-prompts', 'include full prompts in the logs (off: they are user data)')
    .addOption(new Option('--log-level <level>', 'log level (JSON lines on stderr)').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'))
    .option('--report', 'print the cost report of the server running at --url, then exit')
    .option('--url <url>', 'with --report: the server', 'http://127.0.0.1:8000')
    .option('--json', 'with --report: the report as JSON')
    .option('--fleet <redis-url>', 'with --report: the whole fleet\'s report, from the Redis its replicas share (also taken from --config\'s fleet section)')
    .option('--namespace <ns>', 'with --report --fleet: the fleet\'s key prefix (default: attn)')
    .action((o: ServeCliOptions) => runServe(o));
}
