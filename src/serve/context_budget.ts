import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { renderChat } from './chat_template.js';
import type { CompletionJob } from './completion_job.js';
import type { ServeContext } from './context.js';
import { ApiError } from './errors.js';
import type { ServedModel } from './served_model.js';
import { summarizeTurns } from './context_budget_summary.js';
import type { ToolMessageFields } from './tools.js';
import { forTemplate, messagesAsText } from './tools_prompt.js';

/**
 * Context budgets: a chat longer than the model's context is fitted into a
 * token budget instead of being refused. Per model (config
 * `context_budget.models.NAME`, else `context_budget.default`):
 *
 * 1. tool results longer than `max_tool_tokens` keep their beginning;
 * 2. if the prompt is still over the budget, the oldest turns go — a turn
 *    is a user message and everything after it up to the next user
 *    message — whole, so a tool result never loses its call. The system
 *    messages at the start and the last turn always stay. With
 *    `strategy: "summarize"` the dropped turns are replaced by a summary
 *    that `summarizer` (a served model) writes, cached by their content.
 * 3. If even the system messages do not fit the hard limit
 *    (`max_prompt_tokens`, else the context), or the last turn does not
 *    fit beside them, the request is a 400 that says so. The reserve for
 *    the answer is a wish: a chat that cannot be cut to leave it, but fits
 *    the context, is served with less room for the answer.
 *
 * The budget is `max_prompt_tokens`, else the context minus `reserve_tokens`
 * (default: the request's max_tokens, at most a quarter of the context),
 * so that the answer has room. The response reports what was cut in its
 * `attn.context` field; `usage.prompt_tokens` counts the prompt the model saw.
 */

export const ContextPolicySchema = z
  .object({
    /** Fit long chats (true), or refuse them with 400 context_length_exceeded as before (false). */
    enabled: z.boolean().default(true),
    /** The prompt's budget in tokens; default: the context minus reserve_tokens. */
    max_prompt_tokens: z.number().int().positive().optional(),
    /** Tokens kept for the answer; default: the request's max_tokens, at most a quarter of the context. */
    reserve_tokens: z.number().int().nonnegative().optional(),
    /** What becomes of the oldest turns that do not fit. */
    strategy: z.enum(['drop_oldest', 'summarize']).default('drop_oldest'),
    /** For "summarize": the served model that writes summaries. */
    summarizer: z.string().min(1).optional(),
    /** Longest summary, in the summarizer's tokens. */
    summary_max_tokens: z.number().int().positive().max(4096).default(64),
    /** Longest tool result, in tokens; a longer one keeps its beginning. */
    max_tool_tokens: z.number().int().positive().optional(),
  })
  .strict()
  .refine((p) => p.strategy !== 'summarize' || p.summarizer !== undefined, { message: 'strategy "summarize" needs a summarizer (a served model)', path: ['summarizer'] });

export const ContextBudgetSchema = z
  .object({
    default: ContextPolicySchema.default({}),
    models: z.record(z.string(), ContextPolicySchema).default({}),
  })
  .strict();

export type ContextPolicy = z.infer<typeof ContextPolicySchema>;
export type ContextBudgetConfig = z.infer<typeof ContextBudgetSchema>;

export function policyFor(config: ContextBudgetConfig | undefined, model: string): ContextPolicy {
  const c = config ?? ContextBudgetSchema.parse({});
  return Object.hasOwn(c.models, model) ? c.models[model]! : c.default;
}

/** Start-up check: the models and summarizers the config names are served. */
export function checkContextBudgetModels(config: ContextBudgetConfig | undefined, served: readonly string[]): void {
  if (!config) return;
  for (const name of Object.keys(config.models)) {
    if (!served.includes(name)) throw new UserError(`serve config: context_budget.models: "${name}" is not a served model (served: ${served.join(', ')})`);
  }
  for (const [where, p] of [['default', config.default] as const, ...Object.entries(config.models).map(([n, p]) => [`models.${n}`, p] as const)]) {
    if (p.summarizer !== undefined && !served.includes(p.summarizer)) throw new UserError(`serve config: context_budget.${where}.summarizer: "${p.summarizer}" is not a served model (served: ${served.join(', ')})`);
  }
}

/** What the budget did to a request's prompt: the `attn.context` field of the response. */
export interface ContextReport {
  model: string;
  budget_tokens: number;
  /** The prompt as the client sent it, in tokens. */
  original_prompt_tokens: number;
  /** The prompt the model saw. */
  prompt_tokens: number;
  tokens_saved: number;
  dropped_messages: number;
  /** Messages replaced by the summary (counted in dropped_messages too). */
  summarized_messages: number;
  summary_cached?: boolean;
  capped_tool_messages: number;
}

/** The prompt's length in the model's tokens, rendered as encodePrompt renders it. */
export function promptTokens(served: ServedModel, messages: readonly ToolMessageFields[], job: CompletionJob): number {
  const tools = job.tools?.definitions ?? null;
  let text: string;
  if (served.chatTemplate) {
    const shaped = forTemplate(served.chatTemplate, messages, tools);
    try {
      text = served.chatTemplate.render(shaped.messages, { addGenerationPrompt: true, ...(shaped.tools ? { tools: shaped.tools } : {}) });
    } catch {
      return 0; // encodePrompt reports the template's error
    }
    return served.tokenizer.encode(text, { allowedSpecial: 'all' }).length;
  }
  text = renderChat(messagesAsText(messages, tools));
  try {
    return served.tokenizer.encode(text, { disallowedSpecial: [] }).length;
  } catch {
    return 0; // encodePrompt reports the text it cannot encode
  }
}

/** The summary's system message starts with this; its tokens are what SUMMARY_OVERHEAD allows for. */
export const SUMMARY_PREFIX = 'Summary of the earlier conversation: ';
const SUMMARY_OVERHEAD = 16;

const exceeded = (message: string) => new ApiError(400, message, 'invalid_request_error', 'messages', 'context_length_exceeded');

/**
 * Fit a chat job's messages into `served`'s budget (in place: job.messages
 * and job.prompts change). Returns what was cut, or null when nothing was.
 */
export async function fitContext(ctx: ServeContext, job: CompletionJob, served: ServedModel): Promise<ContextReport | null> {
  if (!job.messages) return null;
  const policy = policyFor(ctx.config.context_budget, served.name);
  if (!policy.enabled) return null;
  const context = served.model.config.block_size;
  const maxTokens = job.maxTokens ?? ctx.limits.defaultMaxTokens;
  const reserve = policy.reserve_tokens ?? Math.min(maxTokens, Math.floor(context / 4));
  const budget = Math.min(policy.max_prompt_tokens ?? context - reserve, context - 1);
  // What must not be exceeded: a configured max_prompt_tokens; else the context (one token left for the answer).
  const hard = policy.max_prompt_tokens !== undefined ? budget : context - 1;
  const original = promptTokens(served, job.messages, job);
  let messages = capToolResults(served, job.messages, policy.max_tool_tokens);
  const capped = messages.filter((m, i) => m !== job.messages![i]).length;
  let tokens = capped > 0 ? promptTokens(served, messages, job) : original;
  if (tokens <= budget && capped === 0) return null;

  let dropped = 0;
  let summarized = 0;
  let summaryCached: boolean | undefined;
  if (tokens > budget) {
    const lead = leadingSystem(messages);
    const starts = turnStarts(messages, lead);
    const system = messages.slice(0, lead);
    const systemTokens = promptTokens(served, system.length > 0 ? system : [], job);
    if (system.length > 0 && systemTokens > hard) {
      throw exceeded(`The system prompt alone has ${systemTokens} tokens, but model ${served.name}'s context budget is ${hard} tokens${policy.max_prompt_tokens !== undefined ? ' (context_budget max_prompt_tokens)' : ` (its context is ${context})`}: shorten it`);
    }
    // Drop turns from the oldest until the rest fits; the last turn always stays.
    let fitted: ToolMessageFields[] | null = null;
    for (let k = 1; k < starts.length; k++) {
      const gone = messages.slice(starts[0]!, starts[k]!);
      const kept = messages.slice(starts[k]!);
      let candidate = [...system, ...kept];
      if (policy.strategy === 'summarize') {
        // Room for the longest summary first, so that the summarizer runs once (or a few times if the estimate was short).
        if (promptTokens(served, candidate, job) + policy.summary_max_tokens + SUMMARY_OVERHEAD > budget) continue;
        const s = await summarizeTurns(ctx, policy, gone);
        candidate = [...system, { role: 'system', content: `${SUMMARY_PREFIX}${s.text}` }, ...kept];
        summaryCached = s.cached;
      }
      if (promptTokens(served, candidate, job) <= budget) {
        fitted = candidate;
        dropped = gone.length;
        summarized = policy.strategy === 'summarize' ? gone.length : 0;
        break;
      }
    }
    if (!fitted) {
      // Nothing fits the budget: the reserve for the answer gives way before the conversation does.
      const lastStart = starts[starts.length - 1] ?? lead;
      const minimal = [...system, ...messages.slice(lastStart)];
      const minimalTokens = promptTokens(served, minimal, job);
      if (minimalTokens > hard) {
        throw exceeded(`The last turn of the conversation needs ${minimalTokens} tokens with the system prompt, but model ${served.name}'s context budget is ${hard} tokens: shorten the last message${policy.max_tool_tokens === undefined ? ' or set context_budget.max_tool_tokens' : ''}`);
      }
      if (tokens <= hard && capped === 0) return null; // it fits the context as it is; only the answer's room is short
      fitted = tokens <= hard ? messages : minimal;
      dropped = messages.length - fitted.length;
    }
    messages = fitted;
    tokens = promptTokens(served, messages, job);
  }
  job.messages = messages;
  job.prompts = [renderChat(messagesAsText(messages, job.tools?.definitions ?? null))];
  return {
    model: served.name,
    budget_tokens: budget,
    original_prompt_tokens: original,
    prompt_tokens: tokens,
    tokens_saved: Math.max(0, original - tokens),
    dropped_messages: dropped,
    summarized_messages: summarized,
    ...(summaryCached !== undefined ? { summary_cached: summaryCached } : {}),
    capped_tool_messages: capped,
  };
}

/** Tool results cut to their first `cap` tokens (a new message object for each one cut). */
function capToolResults(served: ServedModel, messages: readonly ToolMessageFields[], cap: number | undefined): ToolMessageFields[] {
  if (cap === undefined) return [...messages];
  return messages.map((m) => {
    if (m.role !== 'tool' || !m.content) return m;
    let ids: Int32Array;
    try {
      ids = served.tokenizer.encode(m.content, { disallowedSpecial: [] });
    } catch {
      return m;
    }
    if (ids.length <= cap) return m;
    return { ...m, content: `${served.tokenizer.decode(ids.subarray(0, cap))} [... ${ids.length - cap} tokens cut]` };
  });
}

/** How many system/developer messages open the chat (they always stay). */
function leadingSystem(messages: readonly ToolMessageFields[]): number {
  let i = 0;
  while (i < messages.length && (messages[i]!.role === 'system' || messages[i]!.role === 'developer')) i++;
  return i;
}

/** Where each turn starts (a user message, or the first message after the system ones). */
function turnStarts(messages: readonly ToolMessageFields[], lead: number): number[] {
  const starts: number[] = [];
  for (let i = lead; i < messages.length; i++) if (i === lead || messages[i]!.role === 'user') starts.push(i);
  return starts;
}
