import type { ServerResponse } from 'node:http';
import type { ServeContext } from './context.js';
import { ApiError, modelNotFound } from './errors.js';
import { sendJson } from './http_io.js';
import { FeedbackRequestSchema } from './request_schemas.js';
import type { RequestState } from './request_state.js';
import { validate } from './validation.js';

/** The small routes: model list, health, metrics, feedback and the ledger report. */

function modelObject(id: string, created: number, owner = 'attn', parent?: string): object {
  return { id, object: 'model', created, owned_by: owner, ...(parent ? { parent } : {}) };
}

/** GET /v1/models: the served models, and "auto" when routing has tiers. */
export function handleModels(ctx: ServeContext, res: ServerResponse): number {
  // A LoRA adapter names its base as `parent` (as vLLM lists adapters).
  const data = [...ctx.models.values(), ...ctx.embedders.values()].map((m) => modelObject(m.name, m.created, 'attn', 'adapter' in m ? m.adapter?.base : undefined));
  if (ctx.config.routing.tiers.length > 0) data.push(modelObject('auto', data.length > 0 ? Math.min(...[...ctx.models.values()].map((m) => m.created)) : 0, 'attn-router'));
  sendJson(res, 200, { object: 'list', data });
  return 200;
}

export function handleModel(ctx: ServeContext, res: ServerResponse, id: string): number {
  const m = ctx.models.get(id) ?? ctx.embedders.get(id);
  if (!m) throw modelNotFound(id);
  sendJson(res, 200, modelObject(m.name, m.created, 'attn', 'adapter' in m ? m.adapter?.base : undefined));
  return 200;
}

export function handleHealth(ctx: ServeContext, res: ServerResponse, closing: boolean): number {
  const status = closing ? 503 : 200;
  const models = [...ctx.models.values()].map((m) => ({ id: m.name, running: m.scheduler.batchSize, queued: m.scheduler.queueDepth }));
  sendJson(res, status, { status: closing ? 'shutting_down' : 'ok', models });
  return status;
}

export async function handleMetrics(ctx: ServeContext, res: ServerResponse): Promise<number> {
  for (const m of ctx.models.values()) {
    ctx.metrics.queueDepth.set({ model: m.name }, m.scheduler.queueDepth);
    ctx.metrics.batchSize.set({ model: m.name }, m.scheduler.batchSize);
  }
  const text = await ctx.metrics.metricsText();
  res.writeHead(200, { 'content-type': ctx.metrics.contentType });
  res.end(text);
  return 200;
}

/**
 * POST /v1/feedback {id, success}: marks a past request (by its response id)
 * successful or not. In a fleet the request may have been served by another
 * replica: the fleet ledger finds it in Redis.
 */
export async function handleFeedback(ctx: ServeContext, st: RequestState, body: unknown, res: ServerResponse): Promise<number> {
  const r = validate(FeedbackRequestSchema, body);
  const inFleet = ctx.ops?.fleetFeedback(r.id, r.success);
  const task = inFleet ? await inFleet : ctx.ledger.feedback(r.id, r.success) ? (ctx.recentTasks.get(r.id) ?? st.task) : null;
  if (task === null) throw new ApiError(404, `No request with id "${r.id}" is known (ids are remembered for a bounded number of requests${inFleet ? ', and for a day in the fleet\'s Redis' : ''})`, 'invalid_request_error', 'id', 'request_not_found');
  ctx.metrics.feedback.inc({ task: ctx.metrics.taskLabel(task), outcome: r.success ? 'success' : 'failure' });
  sendJson(res, 200, { id: r.id, success: r.success, recorded: true });
  return 200;
}

/** GET /v1/ledger: the cost report (what `attn serve report` prints). */
export function handleLedger(ctx: ServeContext, res: ServerResponse): number {
  sendJson(res, 200, ctx.ledger.report());
  return 200;
}
