import type { CompletionJob } from './completion_job.js';
import type { ServeContext } from './context.js';
import { fitContext, type ContextReport } from './context_budget.js';
import { structuredMetrics } from './structured_metrics.js';

/**
 * The context-budget stage of the request pipeline: a chat is fitted for
 * the model it names, or for the first routing tier under "auto" (a later,
 * larger tier gets the same fitted chat). Unknown models are left to the
 * router's 404.
 */
export async function fitChatToBudget(ctx: ServeContext, job: CompletionJob): Promise<ContextReport | null> {
  if (!job.messages) return null;
  const name = job.model === 'auto' ? ctx.config.routing.tiers[0] : job.model;
  const served = name === undefined ? undefined : ctx.models.get(name);
  return served ? fitContext(ctx, job, served) : null;
}

/** The tokens saved, as a metric by what saved them. */
export function countContextCut(ctx: ServeContext, job: CompletionJob): void {
  const cut = job.contextCut;
  if (!cut || cut.tokens_saved === 0) return;
  const action = cut.summarized_messages > 0 ? 'summarized' : cut.dropped_messages > 0 ? 'dropped' : 'capped';
  structuredMetrics(ctx.metrics.registry).contextTokensSaved.inc({ model: cut.model, action }, cut.tokens_saved);
}
