import { randomBytes } from 'node:crypto';
import { pino, type DestinationStream, type Level, type Logger } from 'pino';
import type { Usage } from './contracts.js';

/**
 * Structured logs: one JSON line per event (pino), each request's lines
 * carrying its W3C trace id so they can be joined with the caller's traces.
 * Prompts are user data: they appear only when the operator turns them on.
 */

export interface LoggerOptions {
  level?: Level | 'silent';
  /** Log full prompts (and chat messages); off by default. */
  logPrompts?: boolean;
  /** Where the lines go; stdout when absent. */
  destination?: DestinationStream;
}

/** Keys that hold prompts, removed from every line unless prompts are logged. */
const PROMPT_KEYS = ['prompt', 'messages', 'input', '*.prompt', '*.messages', '*.input'];

export function createLogger(opts: LoggerOptions = {}): Logger {
  const options = {
    level: opts.level ?? 'info',
    base: { service: 'attn-serve', pid: process.pid },
    timestamp: pino.stdTimeFunctions.isoTime,
    // "level":"info" rather than 30: readable without pino-pretty.
    formatters: { level: (label: string) => ({ level: label }) },
    // Belt and braces: even a stray `log.info({ prompt })` cannot leak a prompt.
    ...(opts.logPrompts ? {} : { redact: { paths: PROMPT_KEYS, remove: true } }),
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

export interface TraceParent {
  version: string;
  traceId: string;
  parentId: string;
  flags: string;
}

const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/**
 * A W3C `traceparent` header, or null when it is not one: lowercase hex only,
 * all-zero ids and version ff are invalid; version 00 has exactly four fields,
 * later versions may append more (which are ignored), as the spec asks.
 */
export function parseTraceparent(header: string | null | undefined): TraceParent | null {
  if (typeof header !== 'string') return null;
  const m = TRACEPARENT.exec(header.trim());
  if (!m) return null;
  const [, version, traceId, parentId, flags, rest] = m as unknown as [string, string, string, string, string, string | undefined];
  if (version === 'ff' || (version === '00' && rest !== undefined)) return null;
  if (/^0+$/.test(traceId) || /^0+$/.test(parentId)) return null;
  return { version, traceId, parentId, flags };
}

export interface TraceContext {
  traceId: string;
  /** This request's span. */
  spanId: string;
  /** The caller's span, when a valid traceparent came in. */
  parentId?: string;
  /** To send on: response header and anything this request calls. */
  traceparent: string;
}

function randomHex(bytes: number): string {
  // All zeros is invalid; 2^-64 odds, but a loop costs nothing.
  for (;;) {
    const h = randomBytes(bytes).toString('hex');
    if (!/^0+$/.test(h)) return h;
  }
}

/**
 * The trace of one request: a child span of the caller's trace when it sent a
 * valid traceparent (keeping its flags), else a new trace, marked sampled
 * since every request is logged.
 */
export function newTraceContext(traceparentHeader?: string | null): TraceContext {
  const parent = parseTraceparent(traceparentHeader);
  const traceId = parent?.traceId ?? randomHex(16);
  const spanId = randomHex(8);
  const flags = parent?.flags ?? '01';
  return { traceId, spanId, ...(parent ? { parentId: parent.parentId } : {}), traceparent: `00-${traceId}-${spanId}-${flags}` };
}

export interface RequestLogInfo {
  requestId: string;
  trace: TraceContext;
  route: string;
  model?: string;
  task?: string;
  status?: number;
  stream?: boolean;
  usage?: Usage;
  cost?: number;
  cached?: boolean;
  escalations?: number;
  ttftMs?: number;
  latencyMs?: number;
  /** The prompt or chat messages; logged only with logPrompts. */
  prompt?: unknown;
}

/** The fields of a request's log line, snake_case, without absent ones; the prompt only when logPrompts is on. */
export function requestLogFields(info: RequestLogInfo, logPrompts: boolean): Record<string, unknown> {
  const fields: Record<string, unknown> = {
    request_id: info.requestId,
    trace_id: info.trace.traceId,
    span_id: info.trace.spanId,
    parent_span_id: info.trace.parentId,
    route: info.route,
    model: info.model,
    task: info.task,
    status: info.status,
    stream: info.stream,
    prompt_tokens: info.usage?.prompt_tokens,
    completion_tokens: info.usage?.completion_tokens,
    cost: info.cost,
    cached: info.cached,
    escalations: info.escalations,
    ttft_ms: info.ttftMs,
    latency_ms: info.latencyMs,
    prompt: logPrompts ? info.prompt : undefined,
  };
  for (const k of Object.keys(fields)) if (fields[k] === undefined) delete fields[k];
  return fields;
}
