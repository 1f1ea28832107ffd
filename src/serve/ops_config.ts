import { z } from 'zod';
import { PII_KINDS } from './guardrails/pii.js';

/**
 * The serve config's operational sections (config.ts holds them under these
 * keys): `guardrails`, `fleet` (the Redis a fleet shares), `tracing`
 * (OpenTelemetry export) and `judge` (live traffic judged by a model). Each
 * is optional; absent, the feature is off. Objects are strict like the rest
 * of the config, so a misspelt key is an error naming it.
 */

const action = z.enum(['off', 'log', 'block']);

const RegexSource = z.string().min(1).superRefine((s, ctx) => {
  try {
    new RegExp(s, 'i');
  } catch (e) {
    ctx.addIssue({ code: z.ZodIssueCode.custom, message: `not a valid regular expression: ${(e as Error).message}` });
  }
});

const BucketSchema = z
  .object({
    /** Sustained rate. */
    per_minute: z.number().positive().finite(),
    /** Most taken at once (the bucket's size); default: one minute's worth. */
    burst: z.number().positive().finite().optional(),
  })
  .strict();

/** Each check runs only when its key is present (`"pii": {}` turns redaction on with the defaults below). */
export const GuardrailsSchema = z
  .object({
    pii: z
      .object({
        /** Replace personal data in responses (streamed ones too) with placeholders. */
        redact_output: z.boolean().default(true),
        /** What to do when a prompt carries personal data: nothing, log it, or refuse the request. */
        input: action.default('off'),
        kinds: z.array(z.enum(PII_KINDS)).min(1).default([...PII_KINDS]),
        /** `{KIND}` / `{kind}` become the kind's name. */
        placeholder: z.string().min(1).max(64).default('[{KIND}]'),
      })
      .strict()
      .optional(),
    injection: z
      .object({
        action: action.default('block'),
        /** Score (0–1) at which a prompt counts as an injection attempt. */
        threshold: z.number().gt(0).max(1).default(0.8),
        /** More patterns, added to the built-in ones. */
        patterns: z.array(z.object({ name: z.string().min(1), pattern: RegexSource, weight: z.number().gt(0).max(1) }).strict()).default([]),
      })
      .strict()
      .optional(),
    blocked_topics: z
      .array(
        z
          .object({
            name: z.string().min(1),
            terms: z.array(z.string().trim().min(1)).min(1),
            action: z.enum(['log', 'block']).default('block'),
            /** Check responses too (they are replaced by a refusal when they touch the topic). */
            check_output: z.boolean().default(false),
          })
          .strict(),
      )
      .default([]),
    /** Requests per API key (token bucket). */
    rate_limit: BucketSchema.optional(),
    /** Tokens (prompt + max_tokens reserved, the unused part given back) per API key (token bucket). */
    token_limit: BucketSchema.optional(),
    /** Tokens per API key per period (prompt + completion, counted after each request). */
    token_budget: z
      .object({
        tokens: z.number().int().positive(),
        period_seconds: z.number().int().positive().default(86_400),
      })
      .strict()
      .optional(),
  })
  .strict();

export const FleetSchema = z
  .object({
    /** The Redis every replica shares: rate limits, budgets and the fleet ledger. */
    redis_url: z.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
    namespace: z.string().min(1).regex(/^[A-Za-z0-9_.:-]+$/, 'letters, digits and _.:- only').default('attn'),
    /** This replica's name in logs and the x-attn-replica header; default host:port. */
    replica: z.string().min(1).max(64).optional(),
  })
  .strict();

export const TracingSchema = z
  .object({
    /** OTLP/HTTP traces endpoint, e.g. http://collector:4318/v1/traces (JSON encoding). Absent: spans are not exported. */
    otlp_endpoint: z.string().url().optional(),
    service_name: z.string().min(1).default('attn-serve'),
    /** Extra headers for the collector (e.g. an API key). */
    headers: z.record(z.string(), z.string()).default({}),
  })
  .strict();

export const JudgeSchema = z
  .object({
    /** An OpenAI-compatible server (attn serve included): its base URL, with or without /v1. */
    url: z.string().url(),
    model: z.string().min(1),
    api_key: z.string().optional(),
    /** Fraction of successful completions judged (0–1), chosen at random. */
    fraction: z.number().min(0).max(1),
    /** What a good answer is; the judge scores 1–10 against it. */
    rubric: z.string().min(1).default('The answer is correct, relevant to the request, and complete.'),
    /** Normalised score (0–1) at which an answer counts as a success in the ledger. */
    pass_score: z.number().min(0).max(1).default(0.7),
    timeout_s: z.number().positive().default(30),
    /** Judgements running at once; more are skipped (counted), never queued. */
    max_concurrent: z.number().int().positive().default(4),
  })
  .strict();

export type GuardrailsConfig = z.infer<typeof GuardrailsSchema>;
export type FleetConfig = z.infer<typeof FleetSchema>;
export type TracingConfig = z.infer<typeof TracingSchema>;
export type JudgeConfig = z.infer<typeof JudgeSchema>;
