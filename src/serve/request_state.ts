import type { Logger } from 'pino';
import type { Usage } from './contracts.js';
import type { TraceContext } from './logging.js';
import type { FinishReason } from './sequence.js';

/**
 * One HTTP request while it is being served: its id (the response's `id`, the
 * `x-request-id` header and the key for /v1/feedback), its trace, its task
 * type, and what its log line will say. Generations register a canceller so
 * that a disconnect, the timeout or shutdown can end them at once.
 */
export class RequestState {
  model?: string;
  usage?: Usage;
  cost?: number;
  cached?: boolean;
  escalations?: number;
  ttftMs?: number;
  stream?: boolean;
  prompt?: unknown;
  /** Tokens spent by generations that ended early (timeout, disconnect, shutdown): still paid for. */
  spent?: { model: string; usage: Usage };
  /** Why the request was ended from outside, once it was. */
  ended: FinishReason | null = null;
  private readonly cancellers = new Set<(reason: FinishReason) => void>();

  constructor(
    readonly id: string,
    readonly trace: TraceContext,
    public task: string,
    readonly route: string,
    readonly log: Logger,
    readonly started = performance.now(),
  ) {}

  get elapsedMs(): number {
    return performance.now() - this.started;
  }

  /** Register work to end on cancel(); returns its unregister function. */
  onCancel(fn: (reason: FinishReason) => void): () => void {
    if (this.ended) fn(this.ended);
    this.cancellers.add(fn);
    return () => this.cancellers.delete(fn);
  }

  cancel(reason: FinishReason): void {
    if (this.ended) return;
    this.ended = reason;
    for (const fn of [...this.cancellers]) fn(reason);
  }

  markFirstToken(): void {
    this.ttftMs ??= this.elapsedMs;
  }
}
