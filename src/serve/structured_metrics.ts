import { Counter, type Registry } from 'prom-client';

/**
 * Metrics of structured outputs, tool calls and context budgets, registered
 * on the server's own registry the first time they are needed (so that the
 * metrics file stays the shared list of the core ones).
 */
export interface StructuredMetrics {
  /** Responses that failed the router's response_format check (unconstrained models): what escalation is for. */
  checkFailures: Counter<'model' | 'format'>;
  /** Requests generated under a grammar, by kind: json_object, json_schema, tool_call. */
  constrained: Counter<'model' | 'kind'>;
  /** Answers that were tool calls. */
  toolCalls: Counter<'model'>;
  /** Prompt tokens the context budget removed (dropped, summarised or capped). */
  contextTokensSaved: Counter<'model' | 'action'>;
}

const byRegistry = new WeakMap<Registry, StructuredMetrics>();

export function structuredMetrics(registry: Registry): StructuredMetrics {
  let m = byRegistry.get(registry);
  if (m) return m;
  const registers = [registry];
  m = {
    checkFailures: new Counter({ name: 'attn_response_check_failures_total', help: 'Responses that failed their response_format check (models without constrained decoding)', labelNames: ['model', 'format'], registers }),
    constrained: new Counter({ name: 'attn_constrained_requests_total', help: 'Generations masked by a grammar, by kind (json_object, json_schema, tool_call)', labelNames: ['model', 'kind'], registers }),
    toolCalls: new Counter({ name: 'attn_tool_calls_total', help: 'Responses that were tool calls', labelNames: ['model'], registers }),
    contextTokensSaved: new Counter({ name: 'attn_context_tokens_saved_total', help: 'Prompt tokens removed by the context budget, by action (dropped, summarised, capped)', labelNames: ['model', 'action'], registers }),
  };
  byRegistry.set(registry, m);
  return m;
}
