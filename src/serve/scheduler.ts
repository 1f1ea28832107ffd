import { batchPrefill } from '../generate/batch_prefill.js';
import { batchStep } from '../generate/batch_step.js';
import type { GPT } from '../models/gpt.js';
import { ApiError } from './errors.js';
import { KVCachePool } from './kv_cache_pool.js';
import type { FinishReason, Sequence } from './sequence.js';

export interface SchedulerOptions {
  /** Most sequences decoding together. */
  maxBatch: number;
  /** Most sequences waiting to join; one more is refused (429). */
  maxQueue: number;
  /** Prompt tokens, padding included, prefilled together between two decode steps (at least one prompt), so joining never stalls the batch for long. */
  prefillBudget?: number;
}

export interface SchedulerStats {
  /** Called after every decode step with the batch size and the step's duration. */
  onStep?(batch: number, ms: number): void;
  /** Called whenever the number of waiting sequences changes. */
  onQueue?(depth: number): void;
}

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Continuous batching for one model. Requests wait in a bounded queue; between
 * decode steps the scheduler drops finished sequences, prefills newcomers
 * (each alone, into its own cache) and then runs one step for everyone
 * running, each row with its own position, cache and sampling parameters
 * (batch_step.ts). It yields to the event loop after every step so that HTTP
 * keeps flowing: new requests arrive and disconnects are noticed there.
 */
export class Scheduler {
  private waiting: Sequence[] = [];
  private running: Sequence[] = [];
  private looping = false;
  private closed = false;
  private idle: Array<() => void> = [];
  private readonly caches: KVCachePool;

  constructor(
    private readonly model: GPT,
    private readonly opts: SchedulerOptions,
    private readonly stats: SchedulerStats = {},
  ) {
    model.eval();
    this.caches = new KVCachePool(model.config, opts.maxBatch);
  }

  get queueDepth(): number {
    return this.waiting.length;
  }

  get batchSize(): number {
    return this.running.filter((s) => !s.done).length;
  }

  /** Queue a sequence; 429 when the queue is full, 503 once closing. */
  submit(seq: Sequence): void {
    if (this.closed) throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
    if (this.waiting.length >= this.opts.maxQueue) {
      throw new ApiError(429, `the queue for this model is full (${this.opts.maxQueue} waiting); retry shortly`, 'rate_limit_error', null, 'queue_full', { 'retry-after': '1' });
    }
    this.waiting.push(seq);
    this.stats.onQueue?.(this.waiting.length);
    if (!this.looping) void this.loop();
  }

  /** Refuse new work; resolves when everything queued or running has ended. */
  drain(): Promise<void> {
    this.closed = true;
    if (!this.looping) return Promise.resolve();
    return new Promise((resolve) => this.idle.push(resolve));
  }

  /** End every queued and running sequence now. */
  cancelAll(reason: FinishReason): void {
    for (const s of [...this.waiting, ...this.running]) s.finish(reason);
  }

  private async loop(): Promise<void> {
    this.looping = true;
    try {
      while (this.sweep()) {
        this.admit();
        this.decode();
        await nextTick();
      }
    } finally {
      this.looping = false;
      for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  /** Drop ended sequences (their caches go back to the pool); true while there is work. */
  private sweep(): boolean {
    const before = this.waiting.length;
    this.waiting = this.waiting.filter((s) => !s.done);
    for (const s of this.running) {
      if (s.done && s.cache) {
        this.caches.give(s.cache);
        s.cache = null;
      }
    }
    this.running = this.running.filter((s) => !s.done);
    if (this.waiting.length !== before) this.stats.onQueue?.(this.waiting.length);
    return this.waiting.length + this.running.length > 0;
  }

  /**
   * Prefill newcomers while there is room in the batch, all in one pass
   * (batch_prefill.ts) as long as their padded tokens fit this round's budget.
   */
  private admit(): void {
    const budget = this.opts.prefillBudget ?? 512;
    const group: Sequence[] = [];
    let longest = 0;
    while (this.waiting.length > 0 && this.running.length + group.length < this.opts.maxBatch) {
      const next = this.waiting[0]!;
      const padded = (group.length + 1) * Math.max(longest, next.promptTokens);
      if (group.length > 0 && padded > budget) break;
      this.waiting.shift();
      if (next.done) continue;
      group.push(next);
      longest = Math.max(longest, next.promptTokens);
    }
    this.stats.onQueue?.(this.waiting.length);
    if (group.length === 0) return;
    this.guard(group, () => {
      const caches = group.map((s) => (s.cache = this.caches.take(Math.min(this.model.config.block_size, Math.max(s.cacheSize, s.promptTokens)))));
      const logits = batchPrefill(this.model, group.map((s) => Int32Array.from(s.tokens)), caches);
      const V = this.model.config.vocab_size;
      group.forEach((s, b) => s.accept(logits.subarray(b * V, (b + 1) * V)));
    });
    for (const s of group) {
      if (!s.done) this.running.push(s);
      else if (s.cache) {
        this.caches.give(s.cache);
        s.cache = null;
      }
    }
  }

  /** One token for every running sequence that has not ended. */
  private decode(): void {
    const rows = this.running.filter((s) => !s.done);
    if (rows.length === 0) return;
    const t0 = performance.now();
    this.guard(rows, () => {
      const ids = Int32Array.from(rows, (s) => s.last);
      const logits = batchStep(this.model, ids, rows.map((s) => s.cache!));
      const V = this.model.config.vocab_size;
      rows.forEach((s, b) => s.accept(logits.subarray(b * V, (b + 1) * V)));
    });
    this.stats.onStep?.(rows.length, performance.now() - t0);
  }

  /** A failure inside the model ends the sequences involved, not the server. */
  private guard(rows: Sequence[], work: () => void): void {
    try {
      work();
    } catch (e) {
      for (const s of rows) s.finish('error', e as Error);
    }
  }
}
