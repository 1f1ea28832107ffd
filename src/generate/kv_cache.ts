import type { GPTConfig } from '../models/gpt_config.js';
import type { KVLayer } from '../tensor/ops/attention.js';

/**
 * Keys and values of every position already processed, per layer, so that
 * generating the next token runs the model on that one token instead of the
 * whole context again ("KV cache"). Layout per layer: [batch, capacity, C],
 * heads side by side as in the activations.
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

  constructor(config: Pick<GPTConfig, 'n_layer' | 'n_embd' | 'block_size'>, batch: number, capacity: number = config.block_size) {
    if (capacity > config.block_size) throw new Error(`KV cache of ${capacity} positions exceeds block_size ${config.block_size}`);
    this.batch = batch;
    this.capacity = capacity;
    this.start = new Int32Array(batch);
    const size = batch * capacity * config.n_embd;
    this.layers = Array.from({ length: config.n_layer }, () => ({ k: new Float32Array(size), v: new Float32Array(size), cap: capacity, past: 0, start: this.start }));
  }

  /** Empty the cache; `start` gives each row's padding for the next prompt. */
  reset(start?: ArrayLike<number>): void {
    this.length = 0;
    this.start.fill(0);
    if (start) this.start.set(start);
    for (const l of this.layers) l.past = 0;
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
