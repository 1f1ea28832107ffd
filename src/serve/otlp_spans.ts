import { context, trace, TraceFlags, type Context } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor, RandomIdGenerator, type IdGenerator, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import type { Logger } from 'pino';
import type { TracingConfig } from './ops_config.js';
import type { OpsMetrics } from './ops_metrics.js';
import type { FinishedRequest } from './tracing.js';

/**
 * A finished request as OpenTelemetry spans, sent to an OTLP/HTTP collector
 * (JSON). The OpenTelemetry SDK is loaded (tracing.ts imports this file)
 * only when the config names an endpoint: most runs export nothing, and
 * every `attn` command paid for loading it otherwise.
 */

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

export class OtlpSpans {
  private readonly provider: BasicTracerProvider;
  private readonly ids = new PresetIds();

  constructor(config: TracingConfig & { otlp_endpoint: string }, logger: Logger, metrics: OpsMetrics) {
    const exporter = new ReportingExporter(new OTLPTraceExporter({ url: config.otlp_endpoint, headers: config.headers, timeoutMillis: 5000 }), config.otlp_endpoint, logger, metrics);
    this.provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': config.service_name }),
      idGenerator: this.ids,
      spanProcessors: [new BatchSpanProcessor(exporter, { scheduledDelayMillis: 1000, exportTimeoutMillis: 10_000 })],
    });
  }

  /** The request span (the ids the server gave the request; a child of the caller's span when it sent one) and a child span per stage. */
  record(r: FinishedRequest): void {
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
    await this.provider.shutdown().catch(() => {});
  }
}
