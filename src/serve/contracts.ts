/**
 * The seams between the serving pieces, so that each can be read (and
 * tested) alone: the HTTP server and its continuous-batching scheduler call
 * the economics ledger, the semantic cache, the router, the metrics and the
 * logger only through these interfaces.
 */

/** Token counts of one request, as OpenAI's `usage` reports them. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Price of one model, in currency units (e.g. USD) per million tokens. */
export interface Price {
  input_per_million: number;
  output_per_million: number;
}

/** What the server tells the ledger when a request ends (successfully served or not). */
export interface RequestRecord {
  id: string;
  model: string;
  /** From `metadata.task` or the `x-attn-task` header; "default" when absent. */
  task: string;
  usage: Usage;
  /** Served from the semantic cache: no tokens were generated. */
  cached: boolean;
  /** Times this request moved up a tier (tiered routing). */
  escalations: number;
  /**
   * The attempts on cheaper tiers whose responses failed their check, before
   * the one answered (`model`, `usage`, `cached` above): their tokens were
   * spent, so they are paid for. Absent or empty without escalation.
   */
  escalated?: AttemptRecord[];
  /** Prompt tokens the context budget removed before generation (context_budget.ts). */
  context_tokens_saved?: number;
}

/** One model's attempt at a request: what it cost to try. */
export interface AttemptRecord {
  model: string;
  usage: Usage;
  cached: boolean;
}

/** Cost accounting: cost per request, per task type, and per successful task. */
export interface Ledger {
  /** Records the request and returns its cost (every attempt's, escalated ones included). */
  record(r: RequestRecord): number;
  /** What one attempt costs at this ledger's prices (the cost metric splits a request by model with it). */
  costOf(a: AttemptRecord): number;
  /** `POST /v1/feedback`: false when the id is unknown. */
  feedback(id: string, success: boolean): boolean;
  report(): LedgerReport;
}

export interface TaskReport {
  task: string;
  requests: number;
  successes: number;
  failures: number;
  cost: number;
  cost_per_request: number;
  /** Total cost of the task type's requests (failed ones included) over its successes; null with no success yet. */
  cost_per_successful_task: number | null;
}

export interface LedgerReport {
  requests: number;
  cost: number;
  cost_per_request: number;
  cost_per_successful_task: number | null;
  by_task: TaskReport[];
  by_model: Array<{ model: string; requests: number; prompt_tokens: number; completion_tokens: number; cost: number }>;
  /** Prompt tokens the context budget removed, over all requests (they were not paid for). */
  context_tokens_saved: number;
}

/** A cached response: the text and the usage the original request reported. */
export interface CachedResponse {
  text: string;
  finish_reason: string;
  usage: Usage;
}

/** Semantic cache: a stored response is returned when a prompt's embedding is close enough to a stored one's. */
export interface SemanticCache {
  /** The best stored entry for this model whose cosine similarity with `embedding` is ≥ threshold, if any. */
  lookup(model: string, embedding: Float32Array, threshold: number): Promise<{ response: CachedResponse; similarity: number } | null>;
  store(model: string, embedding: Float32Array, response: CachedResponse): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

/** Facts the router decides on. */
export interface RouteRequest {
  task: string;
  promptTokens: number;
}

/** Tiered routing for `model: "auto"`: an ordered list of model names, cheapest first. */
export interface Router {
  /** Model names to try in order: the first is used, later ones are escalations. */
  tiers(req: RouteRequest): string[];
}
