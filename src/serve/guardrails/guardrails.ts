import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { UserError } from '../../util/errors.js';
import { ApiError } from '../errors.js';
import type { GuardrailsConfig } from '../ops_config.js';
import type { OpsMetrics } from '../ops_metrics.js';
import type { SharedState } from '../shared_state.js';
import { DEFAULT_INJECTION_PATTERNS, injectionScore, type InjectionPattern } from './injection.js';
import { findPII, redactPII, StreamRedactor, type PiiKind } from './pii.js';
import { SharedBudgets, SharedBuckets, type BucketSpec } from './token_bucket.js';
import { compileTopics, findBlockedTopic, type CompiledTopic } from './topics.js';

/**
 * The guardrails around generation, configured in the serve config's
 * `guardrails` section, each check only when its key is there. Before: rate
 * limits and token budgets per API key, the prompt-injection score, blocked
 * topics, personal data in the prompt. After: personal data redacted from
 * the response (streams included), blocked topics in the response. Every
 * check records its decision as attn_guardrail_decisions_total{check,
 * decision} and in the request's log line (`guardrails: {check: decision}`);
 * a refusal is an OpenAI-style error (400 content_policy_violation, 429
 * rate_limit_exceeded / insufficient_quota).
 */

/** Who a request is for limits and budgets: a digest of its API key (never the key itself), or "anonymous". */
export function clientOf(req: IncomingMessage): string {
  const h = req.headers.authorization;
  const m = typeof h === 'string' ? /^Bearer\s+(.+)$/i.exec(h.trim()) : null;
  return m ? `key-${createHash('sha256').update(m[1]!).digest('hex').slice(0, 16)}` : 'anonymous';
}

export type Decisions = Record<string, string>;

const bucketOf = (b: { per_minute: number; burst?: number | undefined }): BucketSpec => ({ capacity: b.burst ?? b.per_minute, refillPerSecond: b.per_minute / 60 });

export class Guardrails {
  private readonly patterns: InjectionPattern[];
  private readonly topics: Array<CompiledTopic & { action: 'log' | 'block'; checkOutput: boolean }>;
  private readonly buckets: SharedBuckets;
  private readonly budgets: SharedBudgets | null;
  private readonly kinds: readonly PiiKind[];

  constructor(
    readonly config: GuardrailsConfig,
    shared: SharedState | null,
    private readonly metrics: OpsMetrics,
  ) {
    this.patterns = [...DEFAULT_INJECTION_PATTERNS, ...(config.injection?.patterns ?? []).map((p) => ({ name: p.name, pattern: new RegExp(p.pattern, 'i'), weight: p.weight }))];
    const compiled = compileTopics(config.blocked_topics);
    this.topics = compiled.map((t, i) => ({ ...t, action: config.blocked_topics[i]!.action, checkOutput: config.blocked_topics[i]!.check_output }));
    this.buckets = new SharedBuckets(shared);
    this.budgets = config.token_budget ? new SharedBudgets(shared, config.token_budget.period_seconds) : null;
    this.kinds = config.pii?.kinds ?? [];
    if (config.rate_limit && bucketOf(config.rate_limit).capacity < 1) throw new UserError('guardrails.rate_limit: burst must be at least 1 request');
  }

  private decide(d: Decisions, check: string, decision: string): void {
    d[check] = decision;
    this.metrics.guardrailDecisions.inc({ check, decision });
  }

  /**
   * The checks before generation, in order of cost: limits first (a client
   * over its limit is refused before any work), then the prompt's content.
   * `tokens` is what the request may use (prompt + max_tokens × choices);
   * returns it as reserved from the token limit, to settle() afterwards.
   * `param` is the request field a refusal names: "prompt" or "messages".
   */
  async beforeGeneration(client: string, texts: readonly string[], tokens: number, d: Decisions, param: string): Promise<number> {
    const c = this.config;
    if (c.rate_limit) {
      const r = await this.buckets.take(`req:${client}`, bucketOf(c.rate_limit), 1);
      this.decide(d, 'rate_limit', r.allowed ? 'pass' : 'block');
      if (!r.allowed) throw limited(`Rate limit reached: ${c.rate_limit.per_minute} requests per minute for this API key`, r.retryAfterMs, 'rate_limit_exceeded');
    }
    if (this.budgets) {
      const used = await this.budgets.used(client);
      const ok = used < c.token_budget!.tokens;
      this.decide(d, 'token_budget', ok ? 'pass' : 'block');
      if (!ok) throw new ApiError(429, `Token budget used up: ${used} of ${c.token_budget!.tokens} tokens in this ${c.token_budget!.period_seconds} s period for this API key`, 'insufficient_quota', null, 'insufficient_quota');
    }
    let reserved = 0;
    if (c.token_limit) {
      const spec = bucketOf(c.token_limit);
      if (tokens > spec.capacity) {
        this.decide(d, 'token_limit', 'block');
        throw new ApiError(429, `The request may use ${tokens} tokens (prompt + max_tokens), more than this API key's token limit allows at once (${spec.capacity}); lower max_tokens`, 'rate_limit_error', null, 'rate_limit_exceeded');
      }
      const r = await this.buckets.take(`tok:${client}`, spec, tokens);
      this.decide(d, 'token_limit', r.allowed ? 'pass' : 'block');
      if (!r.allowed) throw limited(`Token rate limit reached: ${c.token_limit.per_minute} tokens per minute for this API key`, r.retryAfterMs, 'rate_limit_exceeded');
      reserved = tokens;
    }
    const text = texts.join('\n');
    if (c.injection && c.injection.action !== 'off') {
      const s = injectionScore(text, this.patterns);
      const hit = s.score >= c.injection.threshold;
      this.decide(d, 'injection', hit ? (c.injection.action === 'block' ? 'block' : 'log') : 'pass');
      if (hit) d.injection_score = s.score.toFixed(2);
      if (hit && c.injection.action === 'block') {
        await this.settle(client, reserved, 0);
        throw new ApiError(400, `The prompt was refused: it reads as a prompt-injection attempt (${s.matched.join(', ')})`, 'invalid_request_error', param, 'content_policy_violation');
      }
    }
    const topic = findBlockedTopic(text, this.topics);
    if (this.topics.length > 0) {
      const t = topic ? this.topics.find((x) => x.name === topic.topic)! : null;
      this.decide(d, 'topic', t ? (t.action === 'block' ? 'block' : 'log') : 'pass');
      if (t) d.topic = t.name;
      if (t?.action === 'block') {
        await this.settle(client, reserved, 0);
        throw new ApiError(400, `The prompt was refused: it touches a blocked topic (${t.name})`, 'invalid_request_error', param, 'content_policy_violation');
      }
    }
    if (c.pii && c.pii.input !== 'off') {
      const found = findPII(text, this.kinds);
      this.decide(d, 'pii_input', found.length === 0 ? 'pass' : c.pii.input === 'block' ? 'block' : 'log');
      if (found.length > 0 && c.pii.input === 'block') {
        await this.settle(client, reserved, 0);
        throw new ApiError(400, `The prompt was refused: it contains personal data (${[...new Set(found.map((f) => f.kind))].join(', ')})`, 'invalid_request_error', param, 'content_policy_violation');
      }
    }
    return reserved;
  }

  /** After the request: the unused part of the token reservation goes back, and the tokens used count against the budget. */
  async settle(client: string, reserved: number, used: number): Promise<void> {
    if (this.config.token_limit && reserved > used) await this.buckets.take(`tok:${client}`, bucketOf(this.config.token_limit), used - reserved);
    if (this.budgets && used > 0) await this.budgets.spend(client, used);
  }

  /** A response's text with personal data replaced (when configured); the kinds found are added to `kinds`. */
  redactOutput(text: string, kinds: PiiKind[] = []): string {
    const pii = this.config.pii;
    if (!pii?.redact_output) return text;
    const r = redactPII(text, this.kinds, pii.placeholder);
    kinds.push(...r.found.map((f) => f.kind));
    return r.text;
  }

  /** A redactor for one streamed choice, or null when output is not redacted. */
  streamRedactor(): StreamRedactor | null {
    const pii = this.config.pii;
    return pii?.redact_output ? new StreamRedactor(this.kinds, pii.placeholder) : null;
  }

  /** One decision per response: what was redacted from all its choices. */
  countRedactions(kinds: readonly PiiKind[], d: Decisions): void {
    if (!this.config.pii?.redact_output) return;
    for (const k of kinds) this.metrics.piiRedactions.inc({ kind: k });
    this.decide(d, 'pii_output', kinds.length > 0 ? 'redact' : 'pass');
  }

  /** A blocked topic in a (non-streamed) response: the refusal text that replaces it, or null. */
  checkOutputTopic(text: string, d: Decisions): string | null {
    const topics = this.topics.filter((t) => t.checkOutput);
    if (topics.length === 0) return null;
    const hit = findBlockedTopic(text, topics);
    const t = hit ? topics.find((x) => x.name === hit.topic)! : null;
    this.decide(d, 'topic_output', t ? (t.action === 'block' ? 'block' : 'log') : 'pass');
    return t?.action === 'block' ? `[response withheld: it touched a blocked topic (${t.name})]` : null;
  }
}

function limited(message: string, retryAfterMs: number, code: string): ApiError {
  const seconds = Number.isFinite(retryAfterMs) ? Math.max(1, Math.ceil(retryAfterMs / 1000)) : 60;
  return new ApiError(429, `${message}; retry in ${seconds} s`, 'rate_limit_error', null, code, { 'retry-after': String(seconds) });
}
