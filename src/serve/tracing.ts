import type { Attributes } from '@opentelemetry/api';
import type { Logger } from 'pino';
import type { TraceContext } from './logging.js';
import type { TracingConfig } from './ops_config.js';
import type { OpsMetrics } from './ops_metrics.js';
import type { OtlpSpans } from './otlp_spans.js';

/**
 * Traces: one OpenTelemetry span per request, with a child span per stage
 * it went through (guardrails, cache_lookup, retrieval, queue, prefill,
 * decode), carrying token counts and cost. The request span is the one the
 * server already names in its `traceparent` response header and log lines
 * (same trace id and span id), and a child of the caller's span when the
 * request came with a W3C `traceparent`. Stages are recorded as they happen
 * and become spans when the request ends, so no span context has to travel
 * through the async code. Spans go to an OTLP/HTTP collector (JSON) when an
 * endpoint is configured (otlp_spans.ts, loaded only then); if it is
 * unreachable that is logged once (and again once it is back) and serving
 * carries on. Stage durations are also
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

export class Tracing {
  private constructor(
    private readonly spans: OtlpSpans | null,
    private readonly metrics: OpsMetrics,
    private readonly taskLabel: (task: string) => string,
  ) {}

  static async create(config: TracingConfig | undefined, logger: Logger, metrics: OpsMetrics, taskLabel: (task: string) => string): Promise<Tracing> {
    const endpoint = config?.otlp_endpoint;
    const spans = endpoint ? new (await import('./otlp_spans.js')).OtlpSpans({ ...config, otlp_endpoint: endpoint }, logger, metrics) : null;
    return new Tracing(spans, metrics, taskLabel);
  }

  get exporting(): boolean {
    return this.spans !== null;
  }

  /** The request's spans (when exporting) and its stage durations (always). */
  finish(r: FinishedRequest): void {
    const task = this.taskLabel(r.task);
    for (const s of r.stages) this.metrics.stageSeconds.observe({ stage: s.stage, task }, Math.max(0, s.end - s.start) / 1000);
    this.spans?.record(r);
  }

  /** Sends what is still buffered and stops. */
  async close(): Promise<void> {
    await this.spans?.close();
  }
}
