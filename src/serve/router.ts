import type { RouteRequest, Router } from './contracts.js';
import type { RoutingConfig } from './config.js';

/**
 * Tiered routing for `model: "auto"`: start at the cheapest tier the rules
 * allow, and move up a tier when a response fails its check. Each matching
 * rule is a floor ("code starts at least at the medium model", "prompts over
 * 1000 tokens start at least at the large one"), so the rules' order does not
 * matter and a request matching several starts at the largest floor.
 */

/** The `response_format` of an OpenAI request, as far as checking goes. */
export interface ResponseFormat {
  type: string;
}

export interface CheckResult {
  ok: boolean;
  reason?: string;
}

export interface TieredRouter extends Router {
  checkResponse(text: string, responseFormat?: ResponseFormat | null): CheckResult;
}

/** Index in `tiers` of the largest floor among the rules that match; 0 when none does. */
export function startTier(routing: Pick<RoutingConfig, 'tiers' | 'rules'>, req: RouteRequest): number {
  let start = 0;
  for (const rule of routing.rules) {
    if (rule.task !== undefined && rule.task !== req.task) continue;
    if (rule.min_prompt_tokens !== undefined && req.promptTokens < rule.min_prompt_tokens) continue;
    start = Math.max(start, routing.tiers.indexOf(rule.start));
  }
  return start;
}

/**
 * Whether a response is what the request asked for: with json_object (and
 * json_schema, whose schema is not checked) the text must parse to a JSON
 * object; plain text always passes.
 */
export function checkResponse(text: string, responseFormat?: ResponseFormat | null): CheckResult {
  const type = responseFormat?.type ?? 'text';
  if (type !== 'json_object' && type !== 'json_schema') return { ok: true };
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { ok: false, reason: `response is not valid JSON (${(e as Error).message})` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, reason: `response is JSON but not an object (${Array.isArray(value) ? 'array' : value === null ? 'null' : typeof value})` };
  }
  return { ok: true };
}

export function createRouter(routing: Pick<RoutingConfig, 'tiers' | 'rules' | 'escalate_on_failed_check'>): TieredRouter {
  return {
    tiers(req: RouteRequest): string[] {
      const from = routing.tiers.slice(startTier(routing, req));
      return routing.escalate_on_failed_check ? from : from.slice(0, 1);
    },
    checkResponse,
  };
}

export interface TieredResult<T> {
  model: string;
  result: T;
  /** How many times the request moved up a tier. */
  escalations: number;
  /** The last response's check: not ok when even the largest tier failed it (the response is still returned). */
  check: CheckResult;
}

/**
 * Runs `attempt` on each tier in turn until a response passes `check`;
 * `onEscalate` is where the server counts escalations (metrics and logs).
 */
export async function runTiers<T>(
  tiers: string[],
  attempt: (model: string) => Promise<T>,
  check: (result: T) => CheckResult,
  onEscalate?: (from: string, to: string, reason: string | undefined) => void,
): Promise<TieredResult<T>> {
  if (tiers.length === 0) throw new Error('runTiers: no tiers to route to (routing.tiers is empty)');
  for (let i = 0; ; i++) {
    const model = tiers[i]!;
    const result = await attempt(model);
    const c = check(result);
    if (c.ok || i === tiers.length - 1) return { model, result, escalations: i, check: c };
    onEscalate?.(model, tiers[i + 1]!, c.reason);
  }
}
