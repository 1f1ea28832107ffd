import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The server's Prometheus metrics, on a registry of their own (not
 * prom-client's global one), so that each server — and each test — has its
 * own. Durations are in seconds, as Prometheus names them; the buckets run
 * from 5 ms to a minute so p50/p95/p99 come out of histogram_quantile for
 * both a quick first token and a long generation.
 */

export const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60];
/** Forward passes take milliseconds to a few hundred. */
export const STEP_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1];
/** Task types beyond this many get the label "(other)": the task comes from clients, and every label value is a series. */
export const MAX_TASK_LABELS = 100;

export interface ServeMetrics {
  registry: Registry;
  contentType: string;
  /** The exposition text for GET /metrics. */
  metricsText(): Promise<string>;
  /** The label to use for a task type (bounded, see MAX_TASK_LABELS). */
  taskLabel(task: string): string;
  requests: Counter<'route' | 'model' | 'status'>;
  ttft: Histogram<'model'>;
  latency: Histogram<'model'>;
  tokensIn: Counter<'model'>;
  tokensOut: Counter<'model'>;
  cost: Counter<'model' | 'task'>;
  cacheHits: Counter<'model'>;
  cacheMisses: Counter<'model'>;
  escalations: Counter<'from' | 'to'>;
  queueDepth: Gauge<'model'>;
  batchSize: Gauge<'model'>;
  stepSeconds: Histogram<'model'>;
  stepSequences: Counter<'model'>;
  feedback: Counter<'task' | 'outcome'>;
  speculativeRounds: Counter<'model'>;
  speculativeDrafted: Counter<'model'>;
  speculativeAccepted: Counter<'model'>;
  speculativeEmitted: Counter<'model'>;
  kvBlocks: Gauge<'model' | 'state'>;
  kvPrefixHits: Gauge<'model'>;
  kvPrefixHitTokens: Gauge<'model'>;
  kvPreemptions: Gauge<'model'>;
}

export function createServeMetrics(): ServeMetrics {
  const registry = new Registry();
  // Process metrics (process_resident_memory_bytes, CPU, event loop lag), gathered when scraped.
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const tasks = new Set<string>();

  return {
    registry,
    contentType: registry.contentType,
    metricsText: () => registry.metrics(),
    taskLabel(task: string): string {
      if (tasks.has(task)) return task;
      if (tasks.size >= MAX_TASK_LABELS) return '(other)';
      tasks.add(task);
      return task;
    },
    requests: new Counter({ name: 'attn_requests_total', help: 'HTTP requests by route, model and status code', labelNames: ['route', 'model', 'status'], registers }),
    ttft: new Histogram({ name: 'attn_time_to_first_token_seconds', help: 'Time from request arrival to the first generated token', labelNames: ['model'], buckets: LATENCY_BUCKETS, registers }),
    latency: new Histogram({ name: 'attn_request_duration_seconds', help: 'Time from request arrival to the last byte of the response', labelNames: ['model'], buckets: LATENCY_BUCKETS, registers }),
    tokensIn: new Counter({ name: 'attn_prompt_tokens_total', help: 'Prompt tokens received', labelNames: ['model'], registers }),
    tokensOut: new Counter({ name: 'attn_completion_tokens_total', help: 'Tokens generated (cached responses generate none)', labelNames: ['model'], registers }),
    cost: new Counter({ name: 'attn_cost_total', help: 'Cost attributed to requests, in the price table\'s currency', labelNames: ['model', 'task'], registers }),
    cacheHits: new Counter({ name: 'attn_cache_hits_total', help: 'Semantic cache lookups that returned a stored response', labelNames: ['model'], registers }),
    cacheMisses: new Counter({ name: 'attn_cache_misses_total', help: 'Semantic cache lookups that found nothing close enough', labelNames: ['model'], registers }),
    escalations: new Counter({ name: 'attn_escalations_total', help: 'Tiered-routing retries on a larger model after a failed response check', labelNames: ['from', 'to'], registers }),
    queueDepth: new Gauge({ name: 'attn_queue_depth', help: 'Requests waiting to join the running batch', labelNames: ['model'], registers }),
    batchSize: new Gauge({ name: 'attn_running_batch_size', help: 'Sequences in the running decode batch', labelNames: ['model'], registers }),
    // Step time against sequences per step is the batching curve: how much a step slows as the batch grows.
    stepSeconds: new Histogram({ name: 'attn_step_seconds', help: 'Duration of one forward pass of the running batch (decode plus joining prefills)', labelNames: ['model'], buckets: STEP_BUCKETS, registers }),
    stepSequences: new Counter({ name: 'attn_step_sequences_total', help: 'Sequences served by forward passes, summed over passes (divide by the step count for the mean batch)', labelNames: ['model'], registers }),
    // Acceptance rate = accepted / drafted; emitted / rounds = tokens per target pass, the speed-up's ceiling.
    speculativeRounds: new Counter({ name: 'attn_speculative_rounds_total', help: 'Speculative rounds (one target pass per sequence) for models served with a draft', labelNames: ['model'], registers }),
    speculativeDrafted: new Counter({ name: 'attn_speculative_drafted_tokens_total', help: 'Tokens the draft model proposed', labelNames: ['model'], registers }),
    speculativeAccepted: new Counter({ name: 'attn_speculative_accepted_tokens_total', help: 'Proposed tokens the served model kept', labelNames: ['model'], registers }),
    speculativeEmitted: new Counter({ name: 'attn_speculative_emitted_tokens_total', help: 'Tokens emitted by speculative rounds (kept drafts plus one of the served model\'s per round)', labelNames: ['model'], registers }),
    // The paged KV cache (generate/paged_kv/), when a model serves from one: totals since start, set after every step.
    kvBlocks: new Gauge({ name: 'attn_kv_blocks', help: 'KV cache pool blocks by state: used, free, shared (held by two sequences or more), cached (listed for prefix sharing)', labelNames: ['model', 'state'], registers }),
    kvPrefixHits: new Gauge({ name: 'attn_kv_prefix_hits', help: 'Prompts (or preempted sequences) that reused cached KV blocks of a common prefix, since start', labelNames: ['model'], registers }),
    kvPrefixHitTokens: new Gauge({ name: 'attn_kv_prefix_hit_tokens', help: 'Prompt tokens whose keys and values came from the prefix cache instead of a prefill, since start', labelNames: ['model'], registers }),
    kvPreemptions: new Gauge({ name: 'attn_kv_preemptions', help: 'Sequences sent back to the queue because the KV pool ran out, since start (their KV is recomputed)', labelNames: ['model'], registers }),
    feedback: new Counter({ name: 'attn_feedback_total', help: 'POST /v1/feedback reports by task type and outcome (success or failure)', labelNames: ['task', 'outcome'], registers }),
  };
}
