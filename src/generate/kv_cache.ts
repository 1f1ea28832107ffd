import { backend } from '../backend/index.js';
import { isHost, type Storage } from '../backend/storage.js';
import type { CausalLMConfig } from '../models/causal_lm.js';

/**
 * One layer's slice of a KV cache: keys and values [B, cap, nKvHead·headDim]
 * of the positions seen so far, in the current backend's storage (device
 * buffers on webgpu, so decoding never moves them).
 */
export interface KVLayer {
  k: Storage;
  v: Storage;
  /** Slots per row. */
  cap: number;
  /** Slots already filled (equal for every row: prompts are left-padded to one length). */
  past: number;
  /** First real (non-padding) slot of each row. */
  start: Int32Array;
}

/** n zeros in the current backend's storage: fresh host memory, or zeroed device memory. */
function zeros(n: number): Storage {
  return backend().device?.alloc(n, true) ?? new Float32Array(n);
}

/** The sizes a cache needs from a decoder's config: layers, heads (n_kv_head shrinks the cache by n_head / n_kv_head), context. */
export type KVCacheShape = Omit<CausalLMConfig, 'vocab_size'>;

/**
 * Keys and values of every position already processed, per layer, so that
 * generating the next token runs the model on that one token instead of the
 * whole context again ("KV cache"). Layout per layer: [batch, capacity,
 * nKvHead·headDim], heads side by side as in the activations. The attention
 * that reads and writes it is generate/cached_attention.ts.
 *
 * Rows of a batch share one clock: prompts of different lengths are
 * left-padded to the same length, and `start[b]` marks row b's first real
 * slot so attention never looks at the padding.
 */
export class KVCache {
  readonly layers: KVLayer[];
  readonly batch: number;
  readonly capacity: number;
  readonly start: Int32Array;
  /** Slots filled so far, the same for every row. */
  length = 0;

  constructor(config: KVCacheShape, batch: number, capacity: number = config.block_size) {
    if (capacity > config.block_size) throw new Error(`KV cache of ${capacity} positions exceeds block_size ${config.block_size}`);
    this.batch = batch;
    this.capacity = capacity;
    this.start = new Int32Array(batch);
    const width = (config.head_dim ?? config.n_embd / config.n_head) * (config.n_kv_head ?? config.n_head);
    const size = batch * capacity * width;
    // Allocated once for the whole capacity: decoding writes into it and never allocates per token.
    this.layers = Array.from({ length: config.n_layer }, () => ({ k: zeros(size), v: zeros(size), cap: capacity, past: 0, start: this.start }));
  }

  /**
   * Hand a device cache's buffers back to the backend's pool, for the next
   * cache (a server opens and closes one per request). Host arrays are left
   * to the garbage collector. The cache is unusable after.
   */
  dispose(): void {
    const device = backend().device;
    for (const l of this.layers) {
      if (!isHost(l.k)) device?.release(l.k);
      if (!isHost(l.v)) device?.release(l.v);
    }
    this.layers.length = 0;
  }

  /** Empty the cache; `start` gives each row's padding for the next prompt. */
  reset(start?: ArrayLike<number>): void {
    this.length = 0;
    this.start.fill(0);
    if (start) this.start.set(start);
    for (const l of this.layers) l.past = 0;
  }

  /**
   * Forget every slot from `n` on, keeping the first n (a chat whose next
   * prompt shares only its first n tokens with what the cache holds).
   */
  truncate(n: number): void {
    if (!(Number.isInteger(n) && n >= 0 && n <= this.length)) throw new Error(`cannot truncate a KV cache of ${this.length} slots to ${n}`);
    this.length = n;
    for (const l of this.layers) l.past = n;
  }

  /** Record that `n` more slots were written by every layer. */
  advance(n: number): void {
    this.length += n;
    for (const l of this.layers) l.past = this.length;
  }

  get free(): number {
    return this.capacity - this.length;
  }

  /** Position id (index into wpe) of slot `slot` in row b: counted from the row's first real token. */
  position(b: number, slot: number): number {
    return Math.max(0, slot - this.start[b]!);
  }
}
