import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { LATENCY_BUCKETS } from './metrics.js';

/**
 * Metrics of the operational stages (guardrails, traces, the fleet's shared
 * state, live judging), on the server's own registry beside metrics.ts's.
 * Stage durations are a histogram by stage and task type, so p50/p95/p99 per
 * stage come out of histogram_quantile.
 */
export interface OpsMetrics {
  guardrailDecisions: Counter<'check' | 'decision'>;
  piiRedactions: Counter<'kind'>;
  stageSeconds: Histogram<'stage' | 'task'>;
  sharedStateUp: Gauge;
  judged: Counter<'task' | 'verdict'>;
  traceExportFailures: Counter;
}

export function createOpsMetrics(registry: Registry): OpsMetrics {
  const registers = [registry];
  const sharedStateUp = new Gauge({ name: 'attn_shared_state_up', help: '1 while the fleet\'s Redis answers (limits, budgets and ledger shared), 0 while this replica serves on local state', registers });
  sharedStateUp.set(1);
  return {
    guardrailDecisions: new Counter({ name: 'attn_guardrail_decisions_total', help: 'Guardrail decisions by check (pii_input, pii_output, injection, topic, rate_limit, token_limit, token_budget) and decision (pass, log, redact, block)', labelNames: ['check', 'decision'], registers }),
    piiRedactions: new Counter({ name: 'attn_pii_redactions_total', help: 'Pieces of personal data redacted from responses, by kind', labelNames: ['kind'], registers }),
    stageSeconds: new Histogram({ name: 'attn_stage_seconds', help: 'Time spent in each request stage (guardrails, cache_lookup, retrieval, queue, prefill, decode), by task type', labelNames: ['stage', 'task'], buckets: [0.0005, 0.001, ...LATENCY_BUCKETS], registers }),
    sharedStateUp,
    judged: new Counter({ name: 'attn_judged_total', help: 'Live responses judged by the judge model, by task type and verdict (pass, fail, error, skipped)', labelNames: ['task', 'verdict'], registers }),
    traceExportFailures: new Counter({ name: 'attn_trace_export_failures_total', help: 'OTLP span exports that failed (the endpoint is logged once while it stays down)', registers }),
  };
}
