import { createHash } from 'node:crypto';
import type { CompletionJob } from './completion_job.js';
import type { ServeContext } from './context.js';
import { checkRoom, constraintFor, responseFormatGrammar } from './response_format.js';
import type { SequenceParams } from './sequence.js';
import type { ServedModel } from './served_model.js';
import { structuredMetrics } from './structured_metrics.js';
import { parseToolCall, toolCallGrammar, type ToolCall } from './tools.js';

/**
 * The steps of a completion that structured outputs and tool calls add,
 * kept here so that the request pipeline (completions.ts) calls each in one
 * line: decide what the answer must be, constrain each sequence to it, and
 * read tool calls out of the generated text.
 */

/**
 * What the answer must be: a tool call (tools with tool_choice other than
 * "none"; under "auto" the call is optional), else the response_format's
 * document, else free text. 400s for formats and schemas attn cannot follow.
 * Requests with a schema or tools skip the semantic cache: its key holds
 * the response_format's type, but neither the schema nor the tools.
 */
export function planStructuredOutput(job: CompletionJob): void {
  const toolGrammar = job.tools ? toolCallGrammar(job.tools) : null;
  const formatGrammar = responseFormatGrammar(job.responseFormat);
  job.output = toolGrammar ?? (formatGrammar ? { grammar: formatGrammar, optional: false } : null);
  if (job.tools || job.responseFormat?.type === 'json_schema') job.cache = false;
}

/** A choice's sampling parameters with the answer's grammar bound to this model's vocabulary (400 when max_tokens or the context left is too small for it). */
export function constrainParams<P extends SequenceParams>(ctx: ServeContext, job: CompletionJob, served: ServedModel, params: P, promptTokens: number): P {
  const c = constraintFor(job.output ?? null, served, params.stopTokens ?? [], ctx.config.structured_outputs);
  if (!c) return params;
  // The answer ends at max_tokens or when the context is full, whichever comes first.
  checkRoom(c, job.output!.optional, Math.min(params.maxTokens, served.model.config.block_size - promptTokens));
  return { ...params, constraint: c, constraintOptional: job.output!.optional };
}

/** Count a generation made under a grammar, by kind. */
export function countConstrained(ctx: ServeContext, job: CompletionJob, model: string, choices: number): void {
  if (!job.output || !ctx.config.structured_outputs) return;
  const kind = job.tools && job.tools.choice !== 'none' ? 'tool_call' : (job.responseFormat?.type ?? 'text');
  structuredMetrics(ctx.metrics.registry).constrained.inc({ model, kind }, choices);
}

/** The id of choice `index`'s call: derived from the request id, so the stream and the final answer agree. */
export function callIdOf(requestId: string, index: number): string {
  return `call_${createHash('sha256').update(`${requestId}/${index}`).digest('base64url').slice(0, 24)}`;
}

/** A generated answer as a tool call, when the request had tools and the text is one; finish_reason becomes "tool_calls". */
export function readToolCall(job: CompletionJob, requestId: string, index: number, text: string, finishReason: string): { toolCalls?: ToolCall[]; finishReason: string } {
  if (!job.tools || job.tools.choice === 'none') return { finishReason };
  const call = parseToolCall(text);
  if (!call || !job.tools.grammars.has(call.name)) return { finishReason };
  return { toolCalls: [{ id: callIdOf(requestId, index), type: 'function', function: call }], finishReason: 'tool_calls' };
}

/** Whether a job streams tool calls (its text goes through ToolCallStream). */
export const streamsToolCalls = (job: CompletionJob): boolean => !!job.tools && job.tools.choice !== 'none';

/** The router's check, counted when it fails (a model without constrained decoding answered badly). */
export function countCheckFailure(ctx: ServeContext, job: CompletionJob, model: string, ok: boolean): void {
  if (!ok) structuredMetrics(ctx.metrics.registry).checkFailures.inc({ model, format: job.responseFormat?.type ?? 'text' });
}
