import { z } from 'zod';
import { ToolCallSchema, ToolChoiceSchema, ToolSchema } from './tools.js';

/**
 * The request bodies the server accepts, as OpenAI defines them, plus attn's
 * extensions (`top_k`, `repetition_penalty`). Unknown fields are ignored, as
 * newer clients send fields older servers do not know; fields we know but do
 * not implement are refused with a message rather than silently ignored.
 */

const tokenIds = z.array(z.number().int().nonnegative(), { invalid_type_error: 'must be an array of token ids' });

const oneOf = (message: string, ...options: [z.ZodTypeAny, z.ZodTypeAny, ...z.ZodTypeAny[]]) => z.union(options, { errorMap: () => ({ message }) });

const unsupported = (what: string, allowed: (v: unknown) => boolean) =>
  z.unknown().refine((v) => v === undefined || v === null || allowed(v), { message: `is not supported by attn serve (${what})` });

/** Fields shared by /v1/completions and /v1/chat/completions. */
const sampling = {
  model: z.string({ required_error: 'is required', invalid_type_error: 'must be a string' }).min(1, 'must not be empty'),
  max_tokens: z.number().int().min(1).nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  top_p: z.number().gt(0).max(1).nullish(),
  /** Extension: keep only the k most likely tokens. */
  top_k: z.number().int().min(1).nullish(),
  /** Extension: CTRL-style penalty on tokens already in the context (1 = off). */
  repetition_penalty: z.number().gt(0).max(10).nullish(),
  n: z.number().int().min(1).max(8).nullish(),
  stream: z.boolean().nullish(),
  stream_options: z.object({ include_usage: z.boolean().nullish() }).nullish(),
  stop: oneOf('must be a string or an array of up to 4 non-empty strings', z.string().min(1), z.array(z.string().min(1)).max(4)).nullish(),
  seed: z.number().int().min(-(2 ** 53)).max(2 ** 53).nullish(),
  user: z.string().max(256).nullish(),
  /** `task` names the task type for cost accounting; `cache: true` lets a sampled request use the semantic cache. */
  metadata: z.record(z.string(), z.unknown()).nullish(),
  response_format: z
    .object({ type: z.enum(['text', 'json_object', 'json_schema'], { errorMap: () => ({ message: 'type must be "text", "json_object" or "json_schema"' }) }) })
    .passthrough()
    .nullish(),
  presence_penalty: unsupported('use repetition_penalty', (v) => v === 0),
  frequency_penalty: unsupported('use repetition_penalty', (v) => v === 0),
  logit_bias: unsupported('no logit_bias', (v) => typeof v === 'object' && Object.keys(v as object).length === 0),
  logprobs: unsupported('no logprobs', (v) => v === false || v === 0),
  top_logprobs: unsupported('no logprobs', (v) => v === 0),
};

export const CompletionRequestSchema = z.object({
  ...sampling,
  prompt: oneOf(
    'must be a string, an array of strings, an array of token ids, or an array of arrays of token ids',
    z.string(),
    z.array(z.string()).min(1).max(8),
    tokenIds.min(1),
    z.array(tokenIds.min(1)).min(1).max(8),
  ),
  echo: unsupported('no echo', (v) => v === false),
  best_of: unsupported('no best_of', (v) => v === 1),
  suffix: unsupported('no suffix', () => false),
});

const textPart = z.object({ type: z.literal('text'), text: z.string() });

export const ChatMessageSchema = z.object({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool'], { errorMap: () => ({ message: 'must be "system", "developer", "user", "assistant" or "tool"' }) }),
  content: oneOf('must be a string or an array of text parts', z.string(), z.array(textPart)).nullish(),
  name: z.string().nullish(),
  /** An assistant message's calls, and a tool message's answer to one (tools.ts). */
  tool_calls: z.array(ToolCallSchema).nullish(),
  tool_call_id: z.string().nullish(),
}).superRefine((m, ctx) => {
  // As OpenAI: every message has content, but an assistant's that makes tool calls.
  if (m.content == null && !(m.role === 'assistant' && m.tool_calls?.length)) {
    ctx.addIssue({ code: z.ZodIssueCode.invalid_type, expected: 'string', received: m.content === null ? 'null' : 'undefined', path: ['content'], message: `is required in a ${m.role} message${m.role === 'assistant' ? ' without tool_calls' : ''}: a string or an array of text parts` });
  }
});

export const ChatRequestSchema = z.object({
  ...sampling,
  messages: z.array(ChatMessageSchema, { required_error: 'is required', invalid_type_error: 'must be an array of messages' }).min(1, 'must hold at least one message').max(256),
  /** The newer name of max_tokens for chat. */
  max_completion_tokens: z.number().int().min(1).nullish(),
  tools: z.array(ToolSchema).max(128).nullish(),
  tool_choice: ToolChoiceSchema.nullish(),
  /** Accepted; an answer makes at most one call. */
  parallel_tool_calls: z.boolean().nullish(),
});

export const EmbeddingRequestSchema = z.object({
  model: sampling.model,
  input: oneOf(
    'must be a string, an array of strings, an array of token ids, or an array of arrays of token ids',
    z.string().min(1),
    z.array(z.string().min(1)).min(1).max(256),
    tokenIds.min(1),
    z.array(tokenIds.min(1)).min(1).max(256),
  ),
  encoding_format: z.enum(['float', 'base64'], { errorMap: () => ({ message: 'must be "float" or "base64"' }) }).nullish(),
  dimensions: z.number().int().min(1).nullish(),
  user: z.string().max(256).nullish(),
});

export const FeedbackRequestSchema = z.object({
  id: z.string({ required_error: 'is required', invalid_type_error: 'must be a string' }).min(1).max(256),
  success: z.boolean({ required_error: 'is required', invalid_type_error: 'must be true or false' }),
});

export type CompletionRequest = z.infer<typeof CompletionRequestSchema>;
export type ChatRequest = z.infer<typeof ChatRequestSchema>;
export type EmbeddingRequest = z.infer<typeof EmbeddingRequestSchema>;
export type FeedbackRequest = z.infer<typeof FeedbackRequestSchema>;
