import { context, trace, TraceFlags, type Attributes, type Context } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, RandomIdGenerator, type IdGenerator, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Logger } from 'pino';
import type { TraceContext } from './logging.js';
import type { TracingConfig } from './ops_config.js';
import type { OpsMetrics } from './ops_metrics.js';

/**
 * Traces: one OpenTelemetry span per request, with a child span per stage
 * it went through (guardrails, cache_lookup, retrieval, queue, prefill,
 * decode), carrying token counts and cost. The request span is the one the
 * server already names in its `traceparent` response header and log lines
 * (same trace id and span id), and a child of the caller's span when the
 * request came with a W3C `traceparent`. Stages are recorded as they happen
 * and become spans when the request ends, so no span context has to travel
 * through the async code. Spans go to an OTLP/HTTP collector (JSON) when an
 * endpoint is configured; if it is unreachable that is logged once (and
 * again once it is back) and serving carries on. Stage durations are also
 * the attn_stage_seconds histogram, with or without an exporter.
 */

export interface StageRecord {
  stage: string;
  /** performance.now() milliseconds. */
  start: number;
  end: number;
  attributes?: Attributes;
}

export interface FinishedRequest {
  trace: TraceContext;
  name: string;
  task: string;
  start: number;
  end: number;
  status: number;
  attributes: Attributes;
  stages: readonly StageRecord[];
}

/**
 * Ids for the next span, set just before it starts: the SDK asks its id
 * generator synchronously inside startSpan, so the request span takes the
 * ids the server already gave the request. Random ids otherwise.
 */
class PresetIds implements IdGenerator {
  traceId: string | null = null;
  spanId: string | null = null;
  private readonly random = new RandomIdGenerator();

  generateTraceId(): string {
    const t = this.traceId ?? this.random.generateTraceId();
    this.traceId = null;
    return t;
  }

  generateSpanId(): string {
    const s = this.spanId ?? this.random.generateSpanId();
    this.spanId = null;
    return s;
  }
}

/** Passes spans on, and says once (not per batch) when the collector stops or starts answering. */
class ReportingExporter implements SpanExporter {
  private failing = false;

  constructor(
    private readonly inner: SpanExporter,
    private readonly endpoint: string,
    private readonly logger: Logger,
    private readonly metrics: OpsMetrics,
  ) {}

  export(spans: ReadableSpan[], done: (r: { code: number; error?: Error }) => void): void {
    this.inner.export(spans, (r) => {
      if (r.code !== 0) {
        this.metrics.traceExportFailures.inc();
        if (!this.failing) this.logger.warn({ otlp_endpoint: this.endpoint, err: r.error?.message }, 'cannot export traces: the OTLP endpoint does not answer; serving continues, spans are dropped until it does (logged once)');
        this.failing = true;
      } else if (this.failing) {
        this.failing = false;
        this.logger.info({ otlp_endpoint: this.endpoint }, 'the OTLP endpoint answers again: traces are exported');
      }
      done(r);
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}

export class Tracing {
  private readonly provider: BasicTracerProvider | null;
  private readonly ids = new PresetIds();

  constructor(
    config: TracingConfig | undefined,
    logger: Logger,
    private readonly metrics: OpsMetrics,
    private readonly taskLabel: (task: string) => string,
  ) {
    if (!config?.otlp_endpoint) {
      this.provider = null;
      return;
    }
    const exporter = new ReportingExporter(new OTLPTraceExporter({ url: config.otlp_endpoint, headers: config.headers, timeoutMillis: 5000 }), config.otlp_endpoint, logger, metrics);
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': config.service_name }),
      idGenerator: this.ids,
      spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000, exportTimeoutMillis: 10_000 })],
    });
  }

  get exporting(): boolean {
    return this.provider !== null;
  }

  /** The request's spans (when exporting) and its stage durations (always). */
  finish(r: FinishedRequest): void {
    const task = this.taskLabel(r.task);
    for (const s of r.stages) this.metrics.stageSeconds.observe({ stage: s.stage, task }, Math.max(0, s.end - s.start) / 1000);
    if (!this.provider) return;
    const tracer = this.provider.getTracer('attn-serve');
    let parent: Context = context.active();
    if (r.trace.parentId) {
      parent = trace.setSpanContext(parent, { traceId: r.trace.traceId, spanId: r.trace.parentId, traceFlags: Number.parseInt(r.trace.traceparent.slice(-2), 16) & TraceFlags.SAMPLED, isRemote: true });
    } else this.ids.traceId = r.trace.traceId;
    this.ids.spanId = r.trace.spanId;
    const root = tracer.startSpan(r.name, { startTime: r.start, attributes: { ...r.attributes, 'attn.task': r.task, 'http.response.status_code': r.status } }, parent);
    this.ids.traceId = this.ids.spanId = null;
    if (r.status >= 500) root.setStatus({ code: 2 });
    const inside = trace.setSpan(context.active(), root);
    for (const s of r.stages) tracer.startSpan(s.stage, { startTime: s.start, attributes: s.attributes ?? {} }, inside).end(s.end);
    root.end(r.end);
  }

  /** Sends what is still buffered and stops. */
  async close(): Promise<void> {
    await this.provider?.shutdown().catch(() => {});
  }
}
