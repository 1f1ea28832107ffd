import type { KVBlockPool } from './block_pool.js';

/**
 * Full blocks of prompt tokens that sequences may share, found by a hash of
 * the block's tokens chained with the hash of everything before it (64 bits,
 * plain arithmetic so it runs in a browser too) (so a block
 * matches only under the same prefix, as in vLLM's automatic prefix caching).
 * The cache holds one reference to each block it lists; a block only the
 * cache holds is unreferenced and may be evicted, least recently used first,
 * when the pool runs out.
 */
export class PrefixCache {
  private readonly byHash = new Map<string, number>();
  /** Insertion order = recency: a hit moves its entry to the end. */
  private readonly lru = new Map<string, number>();
  /** Lookups that found at least one cached block, and the tokens those found (for /metrics). */
  hits = 0;
  hitTokens = 0;

  constructor(private readonly pool: KVBlockPool) {}

  /** The chained hash of each full block of `tokens`. */
  blockHashes(tokens: ArrayLike<number>): string[] {
    const n = this.pool.blockTokens;
    const out: string[] = [];
    let [a, b] = [0x811c9dc5, 0x9747b28c]; // two independent 32-bit FNV-style chains: a 64-bit key
    for (let start = 0; start + n <= tokens.length; start += n) {
      for (let i = start; i < start + n; i++) {
        a = Math.imul(a ^ tokens[i]!, 0x01000193) >>> 0;
        b = Math.imul(b ^ (tokens[i]! + 0x9e3779b9), 0x5bd1e995) >>> 0;
        b ^= b >>> 15;
      }
      out.push(`${a.toString(16)}:${b.toString(16)}`);
    }
    return out;
  }

  /** The cached blocks of the longest cached run of `hashes` from the start, each retained for the caller. */
  match(hashes: readonly string[]): number[] {
    const blocks: number[] = [];
    for (const h of hashes) {
      const b = this.byHash.get(h);
      if (b === undefined) break;
      this.pool.retain(b);
      blocks.push(b);
    }
    // Touched tail first, so the head of the chain is the most recently used (see publishPrefix).
    for (let i = blocks.length - 1; i >= 0; i--) {
      this.lru.delete(hashes[i]!);
      this.lru.set(hashes[i]!, blocks[i]!);
    }
    if (blocks.length > 0) this.hits++;
    this.hitTokens += blocks.length * this.pool.blockTokens;
    return blocks;
  }

  /** Blocks only the cache holds: what eviction could free now. */
  get evictable(): number {
    let n = 0;
    for (const b of this.byHash.values()) if (this.pool.refCount(b) === 1) n++;
    return n;
  }

  /** List a full block under its hash (the cache takes its own reference); a hash already listed is kept as it is. */
  insert(hash: string, block: number): void {
    if (this.byHash.has(hash)) return;
    this.pool.retain(block);
    this.byHash.set(hash, block);
    this.lru.set(hash, block);
  }

  /** Free the least recently used block that only the cache holds; false when there is none. */
  evictOne(): boolean {
    for (const [h, b] of this.lru) {
      if (this.pool.refCount(b) !== 1) continue;
      this.lru.delete(h);
      this.byHash.delete(h);
      this.pool.release(b);
      return true;
    }
    return false;
  }

  /** Every listed block. */
  blocks(): IterableIterator<number> {
    return this.byHash.values();
  }

  get size(): number {
    return this.byHash.size;
  }
}
