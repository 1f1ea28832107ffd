import { backend } from '../backend/index.js';
import { batchDecodeStored, batchForward, batchForwardOnDevice } from '../generate/batch_step.js';
import { argmaxRowsOf } from '../generate/cached_forward.js';
import { decodeAhead, dropPicks, pickGreedy, type QueuedPicks } from '../generate/decode_ahead.js';
import { KVPoolFullError } from '../generate/paged_kv/block_pool.js';
import { PagedKV, type PagedKVOptions, type PagedKVStats } from '../generate/paged_kv/paged_kv.js';
import { speculativeRound, SpeculativeStats, type SpeculativeRow } from '../generate/speculative.js';
import { readsOnDevice, speculativeRoundOnDevice } from '../generate/speculative_device.js';
import type { CausalLM } from '../models/causal_lm.js';
import { withScratch } from '../tensor/buffer_pool.js';
import { StoredIds } from '../tensor/stored_ids.js';
import { releaseStorage } from '../tensor/tensor.js';
import { ApiError } from './errors.js';
import { KVCachePool } from './kv_cache_pool.js';
import type { FinishReason, Sequence } from './sequence.js';

export interface SchedulerOptions {
  /** Most sequences decoding together. */
  maxBatch: number;
  /** Most sequences waiting to join; one more is refused (429). */
  maxQueue: number;
  /** Prompt tokens that may join one step (at least one prompt), so a burst of newcomers never makes a step long. */
  prefillBudget?: number;
  /**
   * Keep every sequence's keys and values in one pool of blocks (a paged KV
   * cache, generate/paged_kv/): memory grows with the tokens in flight, and
   * requests sharing a prompt prefix share its blocks. Absent: each sequence
   * gets a contiguous cache sized for its longest possible length. A model
   * served with a draft keeps contiguous caches (speculative rounds roll them back).
   */
  kvPool?: PagedKVOptions;
}

/** A smaller model with the same tokenizer that proposes tokens for the served one to check (generate/speculative.ts). */
export interface DraftModel {
  model: CausalLM;
  /** Tokens proposed per round. */
  k: number;
}

export interface SchedulerStats {
  /** Called after every speculative step with its totals over the batch: rows, drafted tokens, those kept, tokens emitted. */
  onSpeculative?(rows: number, drafted: number, accepted: number, emitted: number): void;
  /** Called after every decode step with the batch size and the step's duration. */
  onStep?(batch: number, ms: number): void;
  /** Called whenever the number of waiting sequences changes. */
  onQueue?(depth: number): void;
  /** Called when the scheduler pages its KV cache, after every step and after finished sequences give their blocks back: the pool's state, and sequences preempted so far. */
  onKvPool?(stats: PagedKVStats, preemptions: number): void;
}

const nextTick = () => new Promise<void>((resolve) => setImmediate(resolve));

/**
 * Continuous batching for one model. Requests wait in a bounded queue; between
 * steps the scheduler drops finished sequences and admits newcomers, then
 * runs one forward pass for everyone: a token for each running sequence and
 * the whole prompt of each newcomer (its prefill), each with its own
 * positions, cache and sampling parameters (batch_step.ts). Folding prefill
 * into the step means a joining request never stalls the others for a step
 * of its own. The loop yields to the event loop after every step so that
 * HTTP keeps flowing: new requests arrive and disconnects are noticed there.
 */
export class Scheduler {
  private waiting: Sequence[] = [];
  private running: Sequence[] = [];
  private looping = false;
  private closed = false;
  private idle: Array<() => void> = [];
  /** Work that is not decoding (embedding a prompt for the cache): one piece between two steps. */
  private chores: Array<() => void> = [];
  private readonly caches: KVCachePool;
  private readonly draftCaches: KVCachePool | null;
  /** The paged KV cache, when opts.kvPool asks for one (then `caches` is unused). */
  readonly paged: PagedKV | null;
  /** Sequences sent back to the queue because the pool ran out while they decoded (their KV is recomputed on return). */
  preemptions = 0;
  /** On a device: greedy steps of one batch queued ahead of their reads, oldest first (stepAhead). */
  private ahead: { rows: Sequence[]; picks: QueuedPicks[]; adapters: number[] | undefined } | null = null;

  constructor(
    private readonly model: CausalLM,
    private readonly opts: SchedulerOptions,
    private readonly stats: SchedulerStats = {},
    private readonly draft: DraftModel | null = null,
  ) {
    model.eval();
    draft?.model.eval();
    this.caches = new KVCachePool(model.config, opts.maxBatch);
    this.draftCaches = draft ? new KVCachePool(draft.model.config, opts.maxBatch) : null;
    this.paged = opts.kvPool && !draft ? new PagedKV(model.config, opts.kvPool, opts.maxBatch) : null;
  }

  get queueDepth(): number {
    return this.waiting.length;
  }

  get batchSize(): number {
    return this.running.filter((s) => !s.done).length;
  }

  /** Queue a sequence; 429 when the queue is full, 503 once closing, 400 when it could not fit in the KV pool even alone. */
  submit(seq: Sequence): void {
    if (this.closed) throw new ApiError(503, 'the server is shutting down', 'server_error', null, 'shutting_down');
    const tooBig = this.paged?.tooBig(seq.cacheSize);
    if (tooBig) throw new ApiError(400, tooBig, 'invalid_request_error', 'max_tokens', 'kv_pool_too_small');
    if (this.waiting.length >= this.opts.maxQueue) {
      throw new ApiError(429, `the queue for this model is full (${this.opts.maxQueue} waiting); retry shortly`, 'rate_limit_error', null, 'queue_full', { 'retry-after': '1' });
    }
    this.waiting.push(seq);
    this.stats.onQueue?.(this.waiting.length);
    if (!this.looping) void this.loop();
  }

  /**
   * Run `work` in this model's loop, between two decode steps, and resolve
   * with its result. The loop does one such piece per step, so however many
   * requests arrive with work of this kind (a long prompt to embed for the
   * semantic cache), the sequences already streaming get a token between
   * each, instead of waiting for all of them in the request handlers.
   */
  betweenSteps<T>(work: () => T): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.chores.push(() => {
        try {
          resolve(work());
        } catch (e) {
          reject(e);
        }
      });
      if (!this.looping) void this.loop();
    });
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
      while (this.sweep() || this.chores.length > 0) {
        if (this.ahead) await this.stepAhead();
        else if (backend().device) await this.stepOnDevice(this.admit());
        else this.step(this.admit());
        this.chores.shift()?.();
        await nextTick();
      }
    } finally {
      // Every sequence of a queued batch ended (cancelled, disconnected): its remaining steps are not read.
      if (this.ahead) dropPicks(this.ahead.picks);
      this.ahead = null;
      this.looping = false;
      for (const resolve of this.idle.splice(0)) resolve();
    }
  }

  /** Drop ended sequences (their caches go back to the pool); true while there is work. */
  private sweep(): boolean {
    const before = this.waiting.length;
    this.waiting = this.waiting.filter((s) => !s.done);
    let released = false;
    for (const s of this.running) {
      if (s.done && s.paged) {
        // What it wrote stays findable for a later request that continues it (the next turn of a chat).
        s.paged.publishPrefix(s.tokens);
        s.paged.free();
        s.paged = null;
        released = true;
      }
      if (s.done && s.cache) {
        this.caches.give(s.cache);
        s.cache = null;
      }
      if (s.done && s.draftCache) {
        this.draftCaches!.give(s.draftCache);
        s.draftCache = null;
      }
    }
    this.running = this.running.filter((s) => !s.done);
    if (this.waiting.length !== before) this.stats.onQueue?.(this.waiting.length);
    // Else the last report would be the last step's: an idle server showing blocks that no sequence holds.
    if (released) this.reportKvPool();
    return this.waiting.length + this.running.length > 0;
  }

  /** Newcomers that fit in the batch and in this step's prompt-token budget, each given its cache. */
  private admit(): Sequence[] {
    const budget = this.opts.prefillBudget ?? 512;
    const group: Sequence[] = [];
    let tokens = 0;
    while (this.waiting.length > 0 && this.running.length + group.length < this.opts.maxBatch) {
      const next = this.waiting[0]!;
      if (next.done) {
        this.waiting.shift();
        continue;
      }
      if (this.paged) {
        // Its prompt (and, back from preemption, its output) minus what the prefix cache holds; waits while the pool is short.
        const seq = this.paged.open(next.tokens, this.running.length + group.length);
        if (!seq) break;
        const fresh = next.tokens.length - seq.length;
        if (group.length > 0 && tokens + fresh > budget) {
          seq.free();
          break;
        }
        next.paged = seq;
        tokens += fresh;
      } else {
        if (group.length > 0 && tokens + next.promptTokens > budget) break;
        next.cache = this.caches.take(Math.min(this.model.config.block_size, Math.max(next.cacheSize, next.promptTokens)));
        if (this.draft) next.draftCache = this.draftCaches!.take(Math.min(this.draft.model.config.block_size, Math.max(next.cacheSize, next.promptTokens)));
        tokens += next.promptTokens;
      }
      this.waiting.shift();
      next.admittedAt ??= performance.now();
      group.push(next);
    }
    this.stats.onQueue?.(this.waiting.length);
    return group;
  }

  /** One forward pass: the next token of every running sequence, and the prompt of every newcomer. */
  private step(joining: Sequence[]): void {
    let decoding = this.running.filter((s) => !s.done);
    if (this.paged) {
      joining = this.makeRoom(decoding, joining);
      decoding = this.running.filter((s) => !s.done);
    }
    const rows = [...decoding, ...joining];
    if (rows.length === 0) return;
    const t0 = performance.now();
    if (this.draft && rows.every((s) => s.plain)) this.guard(rows, () => this.speculate(rows, this.draft!));
    else this.guard(rows, () => {
      const chunks = [...decoding.map((s) => Int32Array.of(s.last)), ...joining.map((s) => Int32Array.from(s.paged ? s.tokens.slice(s.paged.length) : s.tokens))];
      // The scores are read here and nowhere else: their array is recycled for the next step.
      withScratch(() => {
        const logits = batchForward(this.model, chunks, rows.map((s) => s.paged ?? s.cache!), adaptersOf(rows));
        const V = this.model.config.vocab_size;
        rows.forEach((s, b) => s.accept(logits.subarray(b * V, (b + 1) * V)));
      });
      // A newcomer's prompt blocks, now filled, are there for the next request with the same prefix.
      for (const s of joining) s.paged?.publishPrefix(s.tokens);
    });
    this.running.push(...joining);
    this.stats.onStep?.(rows.length, performance.now() - t0);
    this.paged?.observe();
    this.reportKvPool();
  }

  /** The pool's state to stats.onKvPool: after every step, and after finished sequences give their blocks back. */
  private reportKvPool(): void {
    if (this.paged) this.stats.onKvPool?.(this.paged.stats(), this.preemptions);
  }

  /**
   * Reserve this step's blocks (one token for each decoding sequence, the
   * prompt of each newcomer), oldest first. When the pool runs out, the
   * newest sequence gives its blocks back and returns to the front of the
   * queue, to be prefilled again (prompt and output so far) when there is
   * room: vLLM's preemption by recomputation. A lone sequence always fits
   * (submit refused any that could not). Returns the newcomers still joining.
   */
  private makeRoom(decoding: Sequence[], joining: Sequence[]): Sequence[] {
    const rows = [...decoding, ...joining];
    for (let i = 0; i < rows.length; i++) {
      const s = rows[i]!;
      const n = joining.includes(s) ? s.tokens.length - s.paged!.length : 1;
      for (;;) {
        try {
          s.paged!.reserve(n);
          break;
        } catch (e) {
          if (!(e instanceof KVPoolFullError)) throw e;
          const victim = rows.pop()!;
          if (rows.length === 0) {
            // Cannot happen for a request submit accepted; ended rather than thrown out of the loop all the same.
            victim.finish('error', e);
            victim.paged!.free();
            victim.paged = null;
            this.running = this.running.filter((r) => r !== victim);
            break;
          }
          victim.paged!.free();
          victim.paged = null;
          this.running = this.running.filter((r) => r !== victim);
          this.waiting.unshift(victim);
          this.preemptions++;
          if (victim === s) break;
        }
      }
    }
    this.stats.onQueue?.(this.waiting.length);
    return joining.filter((s) => rows.includes(s));
  }

  /**
   * step() on a device backend: the batched pass is queued on the device and
   * the step waits for one read. When every sequence decodes greedily with
   * nothing editing its scores, that read is each sequence's token id, the
   * argmax taken on the device, and the next steps are queued before it
   * (stepAhead); otherwise it is the sequences' last scores rows, sampled on
   * the host as step() does. Sequences of LoRA adapters run theirs on the
   * device too (nn/lora_bank.ts). With a draft, a step whose sequences all
   * decode greedily is one speculative round, queued whole and read back
   * once (generate/speculative_device.ts); otherwise it is a plain one.
   */
  private async stepOnDevice(joining: Sequence[]): Promise<void> {
    let decoding = this.running.filter((s) => !s.done);
    if (this.paged) {
      joining = this.makeRoom(decoding, joining);
      decoding = this.running.filter((s) => !s.done);
    }
    const rows = [...decoding, ...joining];
    if (rows.length === 0) return;
    const t0 = performance.now();
    this.running.push(...joining);
    try {
      if (this.draft && rows.every((s) => s.plain && s.greedyAlone) && readsOnDevice(this.model, this.draft.model)) {
        // One speculative round, queued whole on the device and read back once (generate/speculative_device.ts).
        const round = this.speculativeRows(rows);
        this.tookRound(rows, await speculativeRoundOnDevice(this.model, this.draft.model, round.spec, this.draft.k, round.counts), round.counts);
        this.stats.onStep?.(rows.length, performance.now() - t0);
        return;
      }
      const chunks = [...decoding.map((s) => Int32Array.of(s.last)), ...joining.map((s) => Int32Array.from(s.paged ? s.tokens.slice(s.paged.length) : s.tokens))];
      const adapters = adaptersOf(rows);
      const scores = batchForwardOnDevice(this.model, chunks, rows.map((s) => s.paged ?? s.cache!), adapters);
      // A newcomer's prompt blocks are there for the next request with the same prefix (their writes are queued first).
      for (const s of joining) s.paged?.publishPrefix(s.tokens);
      if (rows.every((s) => s.greedyAlone) && decodeAhead() > 0 && this.model.readsStoredIds?.()) {
        this.ahead = { rows, picks: [pickGreedy(scores)], adapters };
        return await this.stepAhead(t0);
      }
      try {
        if (rows.every((s) => s.greedyAlone)) {
          const ids = await argmaxRowsOf(scores);
          rows.forEach((s, b) => s.take(ids[b]!));
        } else {
          const logits = await scores.read();
          const V = this.model.config.vocab_size;
          rows.forEach((s, b) => s.accept(logits.subarray(b * V, (b + 1) * V)));
        }
      } finally {
        releaseStorage(scores.storage);
      }
    } catch (e) {
      for (const s of rows) s.finish('error', e as Error);
    }
    this.stats.onStep?.(rows.length, performance.now() - t0);
    this.paged?.observe();
    this.reportKvPool();
  }

  /**
   * One step of a greedy batch queued ahead (generate/decode_ahead.ts): up to
   * decodeAhead() more decode steps are recorded, each fed the last one's
   * picks where they are, then the oldest step's tokens are awaited and
   * taken. The batch is the same for all its queued steps, so no step is
   * queued once a sequence of it has ended or a request waits for a place
   * in the batch; the steps already queued are read out first, and then the
   * batch changes between two steps as usual. A step is queued only while
   * every sequence has room for it (its cache, its max_tokens).
   */
  private async stepAhead(t0 = performance.now()): Promise<void> {
    const ahead = this.ahead!;
    const { rows, picks } = ahead;
    try {
      while (picks.length <= decodeAhead() && this.mayQueue(rows, picks.length)) {
        const last = picks[picks.length - 1]!;
        picks.push(pickGreedy(batchDecodeStored(this.model, new StoredIds(last.ids, last.rows), rows.map((s) => s.paged ?? s.cache!), ahead.adapters ? { adapters: ahead.adapters } : {})));
      }
      const oldest = picks.shift()!;
      let ids: Int32Array;
      try {
        ids = await oldest.read;
      } finally {
        dropPicks([oldest]);
      }
      // While steps remain queued, each cache is ahead of the tokens taken: take() must not judge the room left by it.
      rows.forEach((s, b) => s.take(ids[b]!, picks.length > 0));
    } catch (e) {
      for (const s of rows) s.finish('error', e as Error);
    }
    if (picks.length === 0 || rows.every((s) => s.done)) {
      dropPicks(picks);
      this.ahead = null;
    }
    this.stats.onStep?.(rows.length, performance.now() - t0);
    this.paged?.observe();
  }

  /**
   * Whether a step may be queued for `rows` behind `queued` steps whose
   * tokens are still to come: every sequence goes on and can use the step's
   * token (its max_tokens, its cache), and no request is waiting for a place
   * that a change of the batch could give it.
   */
  private mayQueue(rows: readonly Sequence[], queued: number): boolean {
    if (this.waiting.some((s) => !s.done) && rows.length < this.opts.maxBatch) return false;
    // Paged: a step takes at most one new block a sequence; queued only while the pool has them free (no preemption mid-queue).
    if (this.paged && this.paged.pool.freeBlocks < rows.length) return false;
    return rows.every((s) => !s.done && s.cacheRoom >= 1 && s.generated + queued + 1 <= s.params.maxTokens);
  }

  /**
   * The step with a draft: one speculative round for every sequence (a
   * newcomer's prompt rides along in both models' passes), each keeping
   * 1 … k + 1 tokens. Sequences whose scores a grammar or an adapter shapes
   * make the whole step a plain one; the draft catches up later.
   */
  private speculate(rows: Sequence[], draft: DraftModel): void {
    const round = this.speculativeRows(rows);
    this.tookRound(rows, speculativeRound(this.model, draft.model, round.spec, draft.k, round.counts), round.counts);
  }

  /** The sequences as a speculative round sees them (each with its caches, sampling and generator), and the round's totals. */
  private speculativeRows(rows: readonly Sequence[]): { spec: SpeculativeRow[]; counts: SpeculativeStats } {
    const spec = rows.map((s) => ({ tokens: [...s.tokens], target: s.cache!, draft: s.draftCache!, sampling: s.params, rng: s.rng, budget: s.params.maxTokens - s.generated }));
    return { spec, counts: new SpeculativeStats() };
  }

  /** Each sequence takes its 1 … k + 1 tokens of the round; the totals go to the stats. */
  private tookRound(rows: readonly Sequence[], out: number[][], counts: SpeculativeStats): void {
    rows.forEach((s, i) => out[i]!.forEach((id, j) => s.take(id, j + 1 < out[i]!.length)));
    this.stats.onSpeculative?.(rows.length, counts.drafted, counts.accepted, counts.emitted);
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

/** Each sequence's LoRA adapter id (−1: the base alone), or undefined when none uses one (batchForward's `adapters`). */
function adaptersOf(rows: readonly Sequence[]): number[] | undefined {
  return rows.some((s) => s.params.adapter !== undefined) ? rows.map((s) => s.params.adapter ?? -1) : undefined;
}
