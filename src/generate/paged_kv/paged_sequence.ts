import { KVPoolFullError, type KVBlockPool } from './block_pool.js';
import type { PrefixCache } from './prefix_cache.js';

/**
 * One sequence's view of the pool: its block table (slot t lives in block
 * table[t / blockTokens] at t % blockTokens) and how many slots are filled.
 * Writes go through `slotFor`, which allocates a block when the table runs
 * out and copies a shared block before writing into it (copy-on-write: a
 * sequence that diverges inside a shared prompt block gets its own copy, the
 * others keep theirs).
 */
export class PagedSequence {
  readonly table: number[] = [];
  length = 0;

  constructor(
    readonly pool: KVBlockPool,
    private readonly prefixes: PrefixCache | null = null,
    /** Most slots the sequence may hold (the model's context); the pool may run out sooner. */
    readonly capacity = Infinity,
  ) {}

  /** Slots left before the model's context is full (a KVCache's `free`). */
  get room(): number {
    return this.capacity - this.length;
  }

  /** Position id of slot `slot` (a paged sequence has no left padding: the slot itself). */
  position(_row: number, slot: number): number {
    return slot;
  }

  /** Record that `n` more slots were written (after a forward pass filled them in every layer). */
  advance(n: number): void {
    if (this.length + n > this.table.length * this.pool.blockTokens) throw new Error(`a paged sequence advanced past its ${this.table.length} blocks`);
    this.length += n;
  }

  /**
   * Start from the cached blocks of the longest cached prefix of `prompt`:
   * its full blocks, then as many slots as agree of one more listed block
   * (PrefixCache.partial). Returns how many prompt tokens are already in the
   * cache, i.e. need no prefill — never the whole prompt: its last token
   * must run to give the first scores, so when the cache holds all of it
   * that token is run again. A block adopted in part (or whose last slot is
   * rewritten) is copied at the first write: copy-on-write, see reserve.
   */
  adoptPrefix(prompt: ArrayLike<number>): number {
    if (!this.prefixes || this.length > 0) return 0;
    const n = this.pool.blockTokens;
    const hashes = this.prefixes.blockHashes(prompt);
    const blocks = this.prefixes.match(hashes);
    this.table.push(...blocks);
    let cached = blocks.length * n;
    const rest = Array.prototype.slice.call(prompt, cached, cached + n) as number[];
    const part = rest.length > 0 ? this.prefixes.partial(blocks.length > 0 ? hashes[blocks.length - 1]! : '', rest) : null;
    if (part) {
      this.table.push(part.block);
      cached += part.tokens;
    }
    this.length = Math.min(cached, prompt.length - 1);
    this.prefixes.recordHit(this.length);
    return this.length;
  }

  /** List this sequence's full blocks of `tokens` (its prompt, once prefilled) for others to share. */
  publishPrefix(tokens: ArrayLike<number>): void {
    if (!this.prefixes) return;
    const n = this.pool.blockTokens;
    const hashes = this.prefixes.blockHashes(tokens);
    const full = Math.min(hashes.length, Math.floor(this.length / n));
    // Listed last block first, so that the least recently used end of a chain is its tail:
    // eviction then shortens a cached prefix instead of cutting its head off (which would strand the rest).
    for (let i = full - 1; i >= 0; i--) {
      this.prefixes.insert(hashes[i]!, this.table[i]!, i > 0 ? hashes[i - 1]! : '', Array.prototype.slice.call(tokens, i * n, (i + 1) * n) as number[]);
    }
  }

  /** A second sequence that continues from this one's slots (parallel samples of one prompt): every block shared until one of them writes. */
  fork(): PagedSequence {
    const other = new PagedSequence(this.pool, this.prefixes);
    for (const b of this.table) this.pool.retain(b);
    other.table.push(...this.table);
    other.length = this.length;
    return other;
  }

  /** Make room for `n` more slots (allocating, evicting unused cached prefixes if needed); throws KVPoolFullError naming the pool's size. */
  reserve(n: number): void {
    const need = Math.ceil((this.length + n) / this.pool.blockTokens) - this.table.length;
    for (let i = 0; i < need; i++) this.table.push(this.allocate());
    // The block the next slot falls in, if shared, is copied before anything is written to it.
    const first = Math.floor(this.length / this.pool.blockTokens);
    if (n > 0 && first < this.table.length && this.pool.refCount(this.table[first]!) > 1) {
      const own = this.allocate();
      this.pool.copy(this.table[first]!, own, this.length % this.pool.blockTokens);
      this.pool.release(this.table[first]!);
      this.table[first] = own;
    }
  }

  /** Where slot `t` lives: its offset in every layer's k and v arrays. */
  slotOffset(t: number): number {
    const n = this.pool.blockTokens;
    return this.pool.offset(this.table[Math.floor(t / n)]!, t % n);
  }

  /** Forget slots from `n` on (a speculative round's refused drafts), releasing whole blocks no longer used. */
  truncate(n: number): void {
    if (!(n >= 0 && n <= this.length)) throw new Error(`cannot truncate a paged sequence of ${this.length} slots to ${n}`);
    this.length = n;
    const keep = Math.ceil(n / this.pool.blockTokens);
    for (const b of this.table.splice(keep)) this.pool.release(b);
  }

  /** Give every block back (the cache keeps its own references to published prefixes). */
  free(): void {
    this.truncate(0);
  }

  private allocate(): number {
    for (;;) {
      const b = this.pool.tryAllocate();
      if (b !== null) return b;
      if (!this.prefixes?.evictOne()) {
        const total = this.pool.blocks * this.pool.blockTokens;
        throw new KVPoolFullError(`the KV cache pool is full: ${this.pool.blocks} blocks of ${this.pool.blockTokens} tokens (${total} tokens) cannot hold this sequence's ${this.length + 1}th token alongside the others`);
      }
    }
  }
}
