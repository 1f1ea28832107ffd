import { UserError } from '../util/errors.js';
import { CHAT_STOP_SEQUENCES, renderChat } from './chat_template.js';
import type { ServeLimits } from './context.js';
import { ApiError, invalidParam } from './errors.js';
import type { ChatRequest, CompletionRequest } from './request_schemas.js';
import type { ResponseFormat } from './router.js';
import type { ServedModel } from './served_model.js';
import type { SequenceParams } from './sequence.js';
import type { OutputGrammar } from './response_format.js';
import type { ContextReport } from './context_budget.js';
import { checkToolMessages, parseTools, type ToolMessageFields, type ToolSetup } from './tools.js';
import { forTemplate, messagesAsText } from './tools_prompt.js';

/** Most choices one request may ask for (prompts × n). */
export const MAX_CHOICES = 16;

/** A completion or chat request reduced to what generation needs, before a model is chosen. */
export interface CompletionJob {
  model: string;
  /** Text prompts (chat already rendered) or token ids, one per prompt. */
  prompts: Array<string | number[]>;
  /** Where prompt errors point: "prompt" or "messages". */
  promptParam: string;
  /**
   * A chat's messages. `prompts` holds them in attn's plain transcript; a
   * model with its own chat template renders them itself (encodePrompt).
   */
  messages?: ToolMessageFields[];
  /** The request's tools and tool_choice (tools.ts); null without tools. */
  tools?: ToolSetup | null;
  /** What the answer must be (response_format or a tool call), set by the handler; null for free text. */
  output?: OutputGrammar | null;
  /** What the context budget cut from the chat (context_budget.ts), reported as the response's `attn.context`. */
  contextCut?: ContextReport | null;
  n: number;
  maxTokens: number | null;
  temperature: number;
  topP?: number;
  topK?: number;
  repetitionPenalty?: number;
  seed: number | null;
  stop: string[];
  stream: boolean;
  includeUsage: boolean;
  responseFormat: ResponseFormat | null;
  /** metadata.cache: true forces the semantic cache on for a sampled request, false turns it off. */
  cache?: boolean;
  /** metadata.task, when given. */
  task?: string;
}

function metadataFields(m: Record<string, unknown> | null | undefined): { task?: string; cache?: boolean } {
  if (!m) return {};
  const out: { task?: string; cache?: boolean } = {};
  if (m.task !== undefined) {
    if (typeof m.task !== 'string' || !/^[\w.:/-]{1,64}$/.test(m.task)) throw invalidParam('metadata.task', "Invalid 'metadata.task': must be 1–64 letters, digits or _.:/-");
    out.task = m.task;
  }
  if (m.cache !== undefined) {
    if (typeof m.cache !== 'boolean' && m.cache !== 'true' && m.cache !== 'false') throw invalidParam('metadata.cache', "Invalid 'metadata.cache': must be true or false");
    out.cache = m.cache === true || m.cache === 'true';
  }
  return out;
}

function common(r: CompletionRequest | ChatRequest, extraStops: readonly string[]): Omit<CompletionJob, 'prompts' | 'promptParam'> {
  const stop = r.stop == null ? [] : typeof r.stop === 'string' ? [r.stop] : r.stop;
  return {
    model: r.model,
    n: r.n ?? 1,
    maxTokens: ('max_completion_tokens' in r ? r.max_completion_tokens : undefined) ?? r.max_tokens ?? null,
    // OpenAI's default is 1: a request that says nothing is sampled.
    temperature: r.temperature ?? 1,
    ...(r.top_p != null ? { topP: r.top_p } : {}),
    ...(r.top_k != null ? { topK: r.top_k } : {}),
    ...(r.repetition_penalty != null ? { repetitionPenalty: r.repetition_penalty } : {}),
    seed: r.seed ?? null,
    stop: [...stop, ...extraStops],
    stream: r.stream === true,
    includeUsage: r.stream_options?.include_usage === true,
    responseFormat: r.response_format ?? null,
    ...metadataFields(r.metadata),
  };
}

export function completionJob(r: CompletionRequest): CompletionJob {
  const p = r.prompt;
  const prompts: Array<string | number[]> = typeof p === 'string' ? [p] : p.length > 0 && typeof p[0] === 'number' ? [p as number[]] : (p as Array<string | number[]>);
  return check({ ...common(r, []), prompts, promptParam: 'prompt' });
}

export function chatJob(r: ChatRequest): CompletionJob {
  const text = (c: ChatRequest['messages'][number]['content']): string => (typeof c === 'string' ? c : (c ?? []).map((part: { text: string }) => part.text).join(''));
  const messages: ToolMessageFields[] = r.messages.map((m) => ({
    role: m.role,
    content: m.content == null && m.tool_calls?.length ? null : text(m.content),
    ...(m.tool_calls?.length ? { tool_calls: m.tool_calls } : {}),
    ...(m.tool_call_id != null ? { tool_call_id: m.tool_call_id } : {}),
  }));
  checkToolMessages(messages);
  const tools = parseTools(r.tools, r.tool_choice);
  return check({ ...common(r, []), prompts: [renderChat(messagesAsText(messages, tools?.definitions ?? null))], promptParam: 'messages', messages, tools });
}

function check(job: CompletionJob): CompletionJob {
  const choices = job.prompts.length * job.n;
  if (choices > MAX_CHOICES) throw invalidParam('n', `Too many choices: ${job.prompts.length} prompt(s) × n=${job.n} = ${choices}, at most ${MAX_CHOICES}`);
  return job;
}

/** A prompt as token ids for one model: 400 when it cannot be encoded or does not fit the context. */
export function encodePrompt(served: ServedModel, job: CompletionJob, index: number): Int32Array {
  const prompt = job.prompts[index]!;
  const param = job.prompts.length > 1 ? `${job.promptParam}[${index}]` : job.promptParam;
  const V = served.model.config.vocab_size;
  let ids: Int32Array;
  if (job.messages && served.chatTemplate) {
    let text: string;
    try {
      const shaped = forTemplate(served.chatTemplate, job.messages, job.tools?.definitions ?? null);
      text = served.chatTemplate.render(shaped.messages, { addGenerationPrompt: true, ...(shaped.tools ? { tools: shaped.tools } : {}) });
    } catch (e) {
      if (!(e instanceof UserError)) throw e;
      throw invalidParam(param, `Invalid '${param}': model ${served.name}: ${e.message}`);
    }
    // The template's own special tokens (<|im_start|>, <|eot_id|>, BOS) are control tokens here.
    ids = served.tokenizer.encode(text, { allowedSpecial: 'all' });
  } else if (typeof prompt === 'string') {
    try {
      // Special tokens typed by a client are text, not control tokens.
      ids = served.tokenizer.encode(prompt, { disallowedSpecial: [] });
    } catch (e) {
      throw invalidParam(param, `Invalid '${param}': model ${served.name} cannot encode it: ${(e as Error).message}`);
    }
  } else {
    const bad = prompt.find((id) => id >= V);
    if (bad !== undefined) throw invalidParam(param, `Invalid '${param}': token id ${bad} is outside the vocabulary of model ${served.name} (0 … ${V - 1})`);
    ids = Int32Array.from(prompt);
  }
  if (ids.length === 0) {
    // An empty prompt starts from <|endoftext|>, as GPT-2 does, when the model has one.
    if (served.stopTokens.length > 0) return Int32Array.of(served.stopTokens[0]!);
    throw invalidParam(param, `Invalid '${param}': the prompt is empty`);
  }
  const context = served.model.config.block_size;
  if (ids.length > context) {
    throw new ApiError(400, `This model's maximum context length is ${context} tokens, but the ${job.promptParam === 'messages' ? 'messages' : 'prompt'} has ${ids.length} tokens`, 'invalid_request_error', param, 'context_length_exceeded');
  }
  return ids;
}

/** Sampling parameters of choice `index`: each choice its own seed, so choices differ but a seeded request repeats. */
export function sequenceParams(job: CompletionJob, served: ServedModel, limits: ServeLimits, index: number, baseSeed: number): SequenceParams & { stop: string[] } {
  const maxTokens = job.maxTokens ?? limits.defaultMaxTokens;
  if (maxTokens > limits.maxTokensCap) throw invalidParam(job.maxTokens === null ? null : 'max_tokens', `Invalid 'max_tokens': at most ${limits.maxTokensCap} (got ${maxTokens})`);
  return {
    maxTokens,
    seed: baseSeed + index,
    temperature: job.temperature,
    ...(job.topP !== undefined ? { topP: job.topP } : {}),
    ...(job.topK !== undefined ? { topK: job.topK } : {}),
    ...(job.repetitionPenalty !== undefined ? { repetitionPenalty: job.repetitionPenalty } : {}),
    ...chatStops(job, served),
    ...(served.adapter ? { adapter: served.adapter.id } : {}),
  };
}

/**
 * What ends a chat reply: the model's end-of-turn tokens when its own template
 * rendered the chat; with attn's plain transcript, the next "\nuser:" line.
 */
function chatStops(job: CompletionJob, served: ServedModel): { stopTokens: number[]; stop: string[] } {
  if (!job.messages) return { stopTokens: served.stopTokens, stop: job.stop };
  if (served.chatTemplate) return { stopTokens: [...new Set([...served.stopTokens, ...(served.chatStopTokens ?? [])])], stop: job.stop };
  return { stopTokens: served.stopTokens, stop: [...job.stop, ...CHAT_STOP_SEQUENCES] };
}
