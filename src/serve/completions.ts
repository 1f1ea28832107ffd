import { randomInt } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { chatJob, completionJob, encodePrompt, sequenceParams, type CompletionJob } from './completion_job.js';
import type { ServeContext } from './context.js';
import type { CachedResponse, Usage } from './contracts.js';
import { ApiError, invalidParam, modelNotFound } from './errors.js';
import { sendJsonHeadFirst } from './http_io.js';
import { chunkBody, completionBody, usageOf, type Dialect, type ResponseHead } from './openai_format.js';
import { ChatRequestSchema, CompletionRequestSchema } from './request_schemas.js';
import type { RequestState } from './request_state.js';
import { runTiers } from './router.js';
import { lookupCache, storeInCache, type CacheKey } from './cache_lookup.js';
import type { ServedModel } from './served_model.js';
import type { FinishReason } from './sequence.js';
import { SseWriter } from './sse.js';
import { retrievalFields } from './retrieval_chat.js';
import { TextGeneration } from './text_generation.js';
import { validate } from './validation.js';
import { callIdOf, constrainParams, countCheckFailure, countConstrained, planStructuredOutput, readToolCall, streamsToolCalls } from './structured_job.js';
import { structuredMetrics } from './structured_metrics.js';
import type { ToolCall } from './tools.js';
import { ToolCallStream } from './tools_stream.js';
import { countContextCut, fitChatToBudget } from './context_budget_step.js';
import { afterCompletion, beforeCompletion, redactingSink } from './completion_ops.js';

interface Choice {
  text: string;
  finishReason: string;
  /** The answer was a tool call (tools.ts). */
  toolCalls?: ToolCall[];
}

/** One model's answer to a job: from generation or from the semantic cache. */
interface Attempt {
  model: string;
  choices: Choice[];
  usage: Usage;
  cached: boolean;
  cacheKey: CacheKey | null;
}

/** Where streamed text goes, one choice at a time. */
interface StreamSink {
  text(choice: number, piece: string): void;
}

/**
 * POST /v1/completions and /v1/chat/completions: validate, pick the model
 * (`auto` → the router's tiers), try the semantic cache, generate through the
 * model's continuous-batching scheduler, check the response (escalating to
 * the next tier when it fails), account for it, and answer — as one JSON
 * object or as a stream of OpenAI chunks. Returns the HTTP status.
 */
export async function handleCompletion(ctx: ServeContext, st: RequestState, body: unknown, res: ServerResponse, dialect: Dialect): Promise<number> {
  const job = dialect.kind === 'chat' ? chatJob(validate(ChatRequestSchema, body)) : completionJob(validate(CompletionRequestSchema, body));
  if (job.task !== undefined) st.task = job.task;
  planStructuredOutput(job);
  job.contextCut = await fitChatToBudget(ctx, job);
  st.stream = job.stream;
  st.prompt = (body as Record<string, unknown>)[dialect.kind === 'chat' ? 'messages' : 'prompt'];
  const tiers = resolveTiers(ctx, job, st.task);
  // Streamed text cannot be taken back, so a streamed request stays on its first tier.
  const route = job.stream ? tiers.slice(0, 1) : tiers;
  const baseSeed = job.seed ?? randomInt(2 ** 31);
  // Validate against the first tier now, so that a bad prompt is a 400 before any stream opens.
  prepare(ctx, job, route[0]!, baseSeed);
  await beforeCompletion(ctx, st, job, route[0]!);
  const head: ResponseHead = { id: st.id, created: Math.floor(Date.now() / 1000), model: route[0]!.name };
  // A stream's headers go out with its first text: its model is its first tier (it never escalates), and a cache hit is known by then.
  const stream = job.stream ? new ChunkStream(res, dialect, head, job, st.id, () => responseHeaders(st.model ?? head.model, st.cached === true, 0)) : null;
  const redacting = redactingSink(ctx, st, stream);
  // Every finished attempt, in tier order: those before the answer failed their check but were paid for.
  const tried: Attempt[] = [];
  const outcome = await runTiers(
    route.map((m) => m.name),
    async (name) => {
      const a = await attempt(ctx, job, ctx.models.get(name)!, baseSeed, st, redacting.sink);
      tried.push(a);
      return a;
    },
    (a) => {
      // A tool call answers the request whatever response_format says about text.
      const c = a.choices[0]!.toolCalls ? { ok: true } : ctx.router.checkResponse(a.choices[0]!.text, job.responseFormat);
      countCheckFailure(ctx, job, a.model, c.ok);
      return c;
    },
    (from, to, reason) => {
      ctx.metrics.escalations.inc({ from, to });
      st.log.info({ from, to, reason }, 'escalating to the next tier');
    },
  ).catch((e: unknown) => {
    // A generation that ended early still used the model: its tokens (and the tiers tried before it) are accounted for.
    if (st.spent) account(ctx, st, { model: st.spent.model, choices: [], usage: st.spent.usage, cached: false, cacheKey: null }, tried, job.contextCut?.tokens_saved);
    throw e;
  });
  const a = outcome.result;
  afterCompletion(ctx, st, a.choices);
  if (outcome.check.ok && a.cacheKey) await storeInCache(ctx, a.cacheKey, cachedResponse(a), st);
  account(ctx, st, a, tried.slice(0, outcome.escalations), job.contextCut?.tokens_saved);
  countContextCut(ctx, job);
  const extension = job.contextCut ? { attn: { context: job.contextCut } } : {};
  // The last bytes wait until the fleet ledger holds the request (a replica killed after answering
  // has counted it); the first bytes have left already (a stream's headers went out before its
  // first token), so a balancer never resends a request a dead replica has counted.
  const recorded = async () => ctx.ops?.recorded(st.id);
  if (stream) {
    await recorded();
    redacting.finish();
    stream.finish(a.choices, a.usage, extension);
    return 200;
  }
  await sendJsonHeadFirst(res, 200, { ...completionBody(dialect, { ...head, model: a.model }, a.choices, a.usage), ...retrievalFields(st), ...extension }, responseHeaders(a.model, a.cached, st.escalations ?? 0), recorded);
  return 200;
}

/** The served models to try, in order: one for a named model, the router's tiers for "auto". */
function resolveTiers(ctx: ServeContext, job: CompletionJob, task: string): ServedModel[] {
  if (job.model !== 'auto') {
    const m = ctx.models.get(job.model);
    if (!m && ctx.embedders.has(job.model)) throw invalidParam('model', `model ${job.model} is a sentence embedder: it serves /v1/embeddings only`);
    if (!m) throw modelNotFound(job.model);
    return [m];
  }
  const first = ctx.models.get(ctx.config.routing.tiers[0] ?? '');
  if (!first) throw invalidParam('model', 'model "auto" needs routing tiers: start attn serve with a --config whose routing.tiers names served models');
  const promptTokens = job.prompts.reduce((n, _, i) => Math.max(n, encodePrompt(first, job, i).length), 0);
  return ctx.router.tiers({ task, promptTokens }).map((name) => ctx.models.get(name)!);
}

function prepare(ctx: ServeContext, job: CompletionJob, served: ServedModel, baseSeed: number) {
  const prompts = job.prompts.map((_, i) => encodePrompt(served, job, i));
  const params = Array.from({ length: prompts.length * job.n }, (_, c) => constrainParams(ctx, job, served, sequenceParams(job, served, ctx.limits, c, baseSeed), prompts[Math.floor(c / job.n)]!.length));
  return { prompts, params };
}

async function attempt(ctx: ServeContext, job: CompletionJob, served: ServedModel, baseSeed: number, st: RequestState, sink: StreamSink | null): Promise<Attempt> {
  const { prompts, params } = prepare(ctx, job, served, baseSeed);
  const promptTokens = prompts.reduce((n, p) => n + p.length, 0);
  st.model = served.name;
  const lookupStart = performance.now();
  const lookup = await lookupCache(ctx, served, job, st);
  if (lookup) ctx.ops?.stage(st, 'cache_lookup', lookupStart, performance.now(), { 'attn.cache_hit': lookup.hit !== undefined && lookup.hit !== null });
  if (lookup?.hit) {
    const r = lookup.hit;
    st.markFirstToken();
    st.cached = true; // before the text: a stream's headers say "hit"
    sink?.text(0, r.text);
    return { model: served.name, choices: [{ text: r.text, finishReason: r.finish_reason }], usage: usageOf(promptTokens, r.usage.completion_tokens), cached: true, cacheKey: null };
  }
  if (params[0]?.constraint) countConstrained(ctx, job, served.name, params.length);
  const results = await generateAll(ctx, served, prompts, params, job.n, st, sink);
  const completion = results.reduce((n, r) => n + r.completionTokens, 0);
  const choices = results.map((r, c) => ({ text: r.text, ...readToolCall(job, st.id, c, r.text, r.finishReason) }));
  const calls = choices.filter((c) => c.toolCalls).length;
  if (calls > 0) structuredMetrics(ctx.metrics.registry).toolCalls.inc({ model: served.name }, calls);
  return {
    model: served.name,
    choices,
    usage: usageOf(promptTokens, completion),
    cached: false,
    cacheKey: lookup?.key ?? null,
  };
}

/** Every choice at once (they join the batch together); fails as a whole if one fails. */
async function generateAll(ctx: ServeContext, served: ServedModel, prompts: Int32Array[], params: ReturnType<typeof prepare>['params'], n: number, st: RequestState, sink: StreamSink | null) {
  const gens: TextGeneration[] = [];
  try {
    params.forEach((p, c) => {
      gens.push(new TextGeneration(served.scheduler, served.tokenizer, prompts[Math.floor(c / n)]!, p, (piece) => {
        st.markFirstToken();
        sink?.text(c, piece);
      }));
    });
  } catch (e) {
    for (const g of gens) g.cancel('cancelled');
    throw e;
  }
  const stop = st.onCancel((reason) => gens.forEach((g) => g.cancel(reason)));
  try {
    const results = await Promise.all(gens.map((g) => g.result));
    recordGenerationStages(ctx, st, gens[0]!, results);
    const early = results.find((r) => r.finishReason !== 'stop' && r.finishReason !== 'length');
    if (early) {
      const prompt = prompts.reduce((n, p) => n + p.length, 0);
      st.spent = { model: served.name, usage: usageOf(prompt, results.reduce((n, r) => n + r.completionTokens, 0)) };
      throw endedEarly(early.finishReason, early.error);
    }
    return results;
  } finally {
    stop();
  }
}

function endedEarly(reason: FinishReason, error?: Error): ApiError {
  switch (reason) {
    case 'timeout':
      return new ApiError(504, 'The request took longer than the server allows (see --request-timeout) and was stopped', 'timeout_error', null, 'timeout');
    case 'shutdown':
      return new ApiError(503, 'The server is shutting down; the request was stopped', 'server_error', null, 'shutting_down');
    case 'cancelled':
      return new ApiError(499, 'The client closed the connection', 'invalid_request_error', null, 'client_closed');
    default:
      return new ApiError(500, `Generation failed: ${error?.message ?? 'unknown error'}`, 'server_error', null, 'generation_failed');
  }
}

function cachedResponse(a: Attempt): CachedResponse {
  const c = a.choices[0]!;
  return { text: c.text, finish_reason: c.finishReason, usage: a.usage };
}

/**
 * Cost, metrics and the request's log fields, once the answer is known.
 * `escalated` are the attempts on cheaper tiers that failed their check
 * before `a`: they were paid for, so the ledger and the token and cost
 * counters count them under their own models.
 */
function account(ctx: ServeContext, st: RequestState, a: Attempt, escalated: Attempt[], contextTokensSaved = 0): void {
  st.model = a.model;
  st.usage = a.usage;
  st.cached = a.cached;
  st.escalations = escalated.length;
  const attempts = escalated.map(({ model, usage, cached }) => ({ model, usage, cached }));
  st.cost = ctx.ledger.record({ id: st.id, model: a.model, task: st.task, usage: a.usage, cached: a.cached, escalations: escalated.length, escalated: attempts, ...(contextTokensSaved > 0 ? { context_tokens_saved: contextTokensSaved } : {}) });
  ctx.recentTasks.set(st.id, st.task);
  const m = ctx.metrics;
  const task = m.taskLabel(st.task);
  for (const e of [...attempts, a]) {
    m.tokensIn.inc({ model: e.model }, e.usage.prompt_tokens);
    if (!e.cached) m.tokensOut.inc({ model: e.model }, e.usage.completion_tokens);
    m.cost.inc({ model: e.model, task }, ctx.ledger.costOf(e));
  }
  if (st.ttftMs !== undefined) m.ttft.observe({ model: a.model }, st.ttftMs / 1000);
}

function responseHeaders(model: string, cached: boolean, escalations: number): Record<string, string> {
  return { 'x-attn-model': model, 'x-attn-cache': cached ? 'hit' : 'miss', 'x-attn-escalations': String(escalations) };
}

/**
 * A streamed answer: the SSE response opens with the first text, each piece
 * is a chunk for its choice; at the end every choice gets its finish_reason,
 * the last of those chunks carries `usage`, and with
 * stream_options.include_usage a final chunk with no choices carries it too,
 * as OpenAI sends it. Errors after the stream opened become an error event.
 */
class ChunkStream implements StreamSink {
  private readonly sse: SseWriter;
  private readonly started = new Set<number>();
  private opened = false;
  /** Per choice, when the request has tools: the parser that turns its text into content or tool_calls deltas. */
  private readonly tools = new Map<number, ToolCallStream>();

  constructor(
    res: ServerResponse,
    private readonly dialect: Dialect,
    private readonly head: ResponseHead,
    private readonly job: CompletionJob,
    private readonly requestId: string,
    /** attn's response headers, asked for when the stream opens. */
    private readonly headers: () => Record<string, string>,
  ) {
    this.sse = new SseWriter(res);
  }

  /** A chat delta of one choice (the first carries the role, as OpenAI's does). */
  private delta(choice: number, delta: Record<string, unknown>): void {
    this.open();
    const first = !this.started.has(choice);
    this.started.add(choice);
    this.sse.send(chunkBody(this.dialect, this.head, [{ index: choice, delta: first ? { role: 'assistant', content: null, ...delta } : delta, logprobs: null, finish_reason: null }]));
  }

  private toolStream(choice: number): ToolCallStream {
    let t = this.tools.get(choice);
    if (!t) {
      t = new ToolCallStream(callIdOf(this.requestId, choice), {
        content: (text) => this.delta(choice, { content: text }),
        toolCall: (d) => this.delta(choice, { tool_calls: [d] }),
      });
      this.tools.set(choice, t);
    }
    return t;
  }

  private open(): void {
    if (this.opened) return;
    this.opened = true;
    this.sse.open(this.headers());
  }

  text(choice: number, piece: string): void {
    if (this.dialect.kind === 'chat' && streamsToolCalls(this.job)) return this.toolStream(choice).push(piece);
    this.open();
    const first = !this.started.has(choice);
    this.started.add(choice);
    this.sse.send(chunkBody(this.dialect, this.head, [this.dialect.chunkChoice(choice, piece, null, first)]));
  }

  /** `extension`: attn's own fields (attn.context), on the chunks that carry usage. */
  finish(choices: Choice[], usage: Usage, extension: object = {}): void {
    for (const t of this.tools.values()) t.end();
    this.open();
    choices.forEach((c, i) => {
      const last = i === choices.length - 1;
      this.sse.send({ ...chunkBody(this.dialect, this.head, [this.dialect.chunkChoice(i, '', c.finishReason, !this.started.has(i))], last ? usage : undefined), ...(last ? extension : {}) });
    });
    if (this.job.includeUsage) this.sse.send({ ...chunkBody(this.dialect, this.head, [], usage), ...extension });
    this.sse.done();
  }
}

/** Errors of a streamed request after its stream opened cannot change the status: they end the stream. */
export function failOpenStream(res: ServerResponse, e: ApiError): boolean {
  if (!res.headersSent || !(res.getHeader('content-type') ?? '').toString().startsWith('text/event-stream')) return false;
  const sse = new SseWriter(res);
  sse.send(e.toJSON());
  sse.done();
  return true;
}

/**
 * The first choice's queue, prefill and decode stages (all choices of a
 * request join the batch together). Prefill runs in the step that admits
 * the sequence, so it ends with the first token.
 */
function recordGenerationStages(ctx: ServeContext, st: RequestState, g: TextGeneration, results: Array<{ promptTokens: number; completionTokens: number }>): void {
  const ops = ctx.ops;
  if (!ops) return;
  const t = g.times;
  const end = t.finished ?? performance.now();
  const admitted = t.admitted ?? end;
  const first = t.firstToken ?? end;
  ops.stage(st, 'queue', t.submitted, admitted);
  ops.stage(st, 'prefill', admitted, first, { 'attn.prompt_tokens': results.reduce((n, r) => n + r.promptTokens, 0) });
  ops.stage(st, 'decode', first, end, { 'attn.completion_tokens': results.reduce((n, r) => n + r.completionTokens, 0) });
}
