import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { StructuredOutputsSchema } from './response_format.js';
import { checkContextBudgetModels, ContextBudgetSchema } from './context_budget.js';
import { FleetSchema, GuardrailsSchema, JudgeSchema, TracingSchema } from './ops_config.js';

/**
 * The serve config file (`attn serve --config serve.json`): prices, the
 * semantic cache and tiered routing. Every object is strict, so a misspelt key
 * is an error that names it rather than a setting silently ignored.
 */

const money = z.number().finite().nonnegative();

export const PriceSchema = z
  .object({
    input_per_million: money,
    output_per_million: money,
  })
  .strict();

export const CacheSettingsSchema = z
  .object({
    enabled: z.boolean().default(true),
    /** Cosine similarity a stored prompt must reach to be served; the source texts use 0.92–0.95. */
    threshold: z.number().gt(0).max(1).default(0.95),
    /** Per task type (`metadata.task`), overriding `threshold`. */
    task_thresholds: z.record(z.string(), z.number().gt(0).max(1)).default({}),
    /** Entries expire this long after they were stored (hits do not extend it: a stale answer stays stale). */
    ttl_seconds: z.number().positive().finite().default(3600),
    max_entries: z.number().int().positive().max(1_000_000).default(10_000),
    /** `redis://…` or `rediss://…` for a cache shared by several servers; absent: in memory. */
    url: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .optional(),
    /** Key prefix in Redis, so that several deployments can share one server. */
    namespace: z.string().min(1).regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _.:- only').default('attn:cache'),
    /** Sampled requests (temperature > 0) are not cached unless this is on (or the request asks). */
    include_sampled: z.boolean().default(false),
    /**
     * Let a language model's mean-pooled hidden states key the cache when no
     * sentence embedder is served. Off by default: a GPT's pooled states do not
     * separate meanings, so unrelated prompts can be served each other's
     * answers; without an embedder and without this, the cache stays off.
     */
    allow_gpt_embeddings: z.boolean().default(false),
  })
  .strict();

export const RoutingRuleSchema = z
  .object({
    /** Matches requests of this task type; absent: any task. */
    task: z.string().min(1).optional(),
    /** Matches prompts of at least this many tokens; absent: any length. */
    min_prompt_tokens: z.number().int().nonnegative().optional(),
    /** The model (one of `tiers`) to start at when the rule matches. */
    start: z.string().min(1),
  })
  .strict();

export const RoutingSchema = z
  .object({
    /** Model names for `model: "auto"`, cheapest (smallest) first. */
    tiers: z.array(z.string().min(1)).default([]),
    /** Each matching rule sets a floor; the request starts at the largest floor (the first tier when none match). */
    rules: z.array(RoutingRuleSchema).default([]),
    /** Retry on the next tier when a response fails its check (e.g. json_object that does not parse). */
    escalate_on_failed_check: z.boolean().default(true),
  })
  .strict()
  .superRefine((r, ctx) => {
    const seen = new Set<string>();
    r.tiers.forEach((t, i) => {
      if (seen.has(t)) ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['tiers', i], message: `"${t}" is listed twice` });
      seen.add(t);
    });
    r.rules.forEach((rule, i) => {
      if (!seen.has(rule.start)) {
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['rules', i, 'start'], message: `"${rule.start}" is not one of routing.tiers` });
      }
    });
  });

export const ServeConfigSchema = z
  .object({
    /** Per model name, in currency units per million tokens. */
    prices: z.record(z.string(), PriceSchema).default({}),
    /** For models not in `prices`: free unless set, so costs are never invented. */
    default_price: PriceSchema.default({ input_per_million: 0, output_per_million: 0 }),
    cache: CacheSettingsSchema.default({}),
    routing: RoutingSchema.default({}),
    /** Constrained decoding for response_format and tool calls (response_format.ts). */
    structured_outputs: StructuredOutputsSchema.default({}),
    /** Per-model policies that fit long chats into the context (context_budget.ts). */
    context_budget: ContextBudgetSchema.default({}),
    /** Operations (ops_config.ts): each absent = off. */
    guardrails: GuardrailsSchema.optional(),
    fleet: FleetSchema.optional(),
    tracing: TracingSchema.optional(),
    judge: JudgeSchema.optional(),
  })
  .strict();

export type ServeConfig = z.infer<typeof ServeConfigSchema>;
export type ServeConfigInput = z.input<typeof ServeConfigSchema>;
export type CacheSettings = z.infer<typeof CacheSettingsSchema>;
export type RoutingConfig = z.infer<typeof RoutingSchema>;
export type RoutingRule = z.infer<typeof RoutingRuleSchema>;

/** `cache.task_thresholds.code` style, from a zod path. */
function keyPath(path: Array<string | number>): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('') || '(top level)';
}

/** Validates a parsed config; the error names the file and the bad key. */
export function parseServeConfig(raw: unknown, source = 'serve config'): ServeConfig {
  const r = ServeConfigSchema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new UserError(`${source}: ${keyPath(issue.path)}: ${issue.message}`);
}

export function loadServeConfig(path: string): ServeConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`${path}: cannot read the serve config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path}: invalid JSON: ${(e as Error).message}`);
  }
  return parseServeConfig(raw, path);
}

/**
 * The config without a file: every model free, the in-memory cache, and
 * `model: "auto"` routing over the served models in the order given (pass them
 * smallest first, e.g. sorted by parameter count).
 */
export function defaultServeConfig(modelNames: string[]): ServeConfig {
  return parseServeConfig({ routing: { tiers: [...new Set(modelNames)] } }, 'default serve config');
}

/**
 * Names in the config that are not served models: the server calls this at
 * start-up so that a typo in routing fails at once, not at the first "auto" request.
 */
export function checkConfigModels(config: ServeConfig, servedModels: string[]): void {
  const served = new Set(servedModels);
  const tiers = config.routing.tiers;
  const i = tiers.findIndex((t) => !served.has(t));
  if (i >= 0) throw new UserError(`serve config: routing.tiers[${i}]: "${tiers[i]}" is not a served model (served: ${servedModels.join(', ')})`);
  checkContextBudgetModels(config.context_budget, servedModels);
}

/** The price of a model: its entry in the table, else the default. */
export function priceOf(config: Pick<ServeConfig, 'prices' | 'default_price'>, model: string): { input_per_million: number; output_per_million: number } {
  return Object.hasOwn(config.prices, model) ? config.prices[model]! : config.default_price;
}
