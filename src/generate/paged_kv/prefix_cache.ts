import type { KVBlockPool } from './block_pool.js';

/**
 * Full blocks of prompt tokens that sequences may share, found by a hash of
 * the block's tokens chained with the hash of everything before it (64 bits,
 * plain arithmetic so it runs in a browser too) (so a block
 * matches only under the same prefix, as in vLLM's automatic prefix caching).
 * The cache holds one reference to each block it lists; a block only the
 * cache holds is unreferenced and may be evicted, least recently used first,
 * when the pool runs out.
 *
 * A shared prompt rarely ends on a block boundary: a 1 000-token system
 * prompt fills 62 blocks of 16 and 8 slots of the 63rd, whose other 8 hold
 * the first request's own question. So after the full blocks, `partial` also
 * finds the listed block under the same chain whose first tokens agree
 * longest with what follows, and the sequence adopts just those slots (token
 * granularity at the boundary, as SGLang's radix tree has everywhere); its
 * first write copies the block (copy-on-write, PagedSequence.reserve).
 */
export class PrefixCache {
  private readonly byHash = new Map<string, number>();
  /** Each listed block's tokens and the hash of the chain before it ('' for a first block). */
  private readonly meta = new Map<string, { parent: string; tokens: number[] }>();
  /** The listed blocks that follow each chain: where `partial` looks. */
  private readonly children = new Map<string, Set<string>>();
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
    return blocks;
  }

  /**
   * After `parent` (the hash of the chain matched so far; '' at the start),
   * the listed block whose first tokens agree longest with `next`, retained
   * for the caller with how many of its tokens agree; null when none agrees
   * on its first token. `next` holds what follows the match in the prompt.
   */
  partial(parent: string, next: ArrayLike<number>): { block: number; tokens: number } | null {
    let best: { hash: string; tokens: number } | null = null;
    for (const h of this.children.get(parent) ?? []) {
      const { tokens } = this.meta.get(h)!;
      let n = 0;
      while (n < tokens.length && n < next.length && tokens[n] === next[n]) n++;
      if (n > (best?.tokens ?? 0)) best = { hash: h, tokens: n };
    }
    if (!best) return null;
    const block = this.byHash.get(best.hash)!;
    this.pool.retain(block);
    this.lru.delete(best.hash);
    this.lru.set(best.hash, block);
    return { block, tokens: best.tokens };
  }

  /** Count one lookup that spared `tokens` prompt tokens their prefill (for /metrics). */
  recordHit(tokens: number): void {
    if (tokens > 0) this.hits++;
    this.hitTokens += tokens;
  }

  /** Blocks only the cache holds: what eviction could free now. */
  get evictable(): number {
    let n = 0;
    for (const b of this.byHash.values()) if (this.pool.refCount(b) === 1) n++;
    return n;
  }

  /**
   * List a full block under its hash (the cache takes its own reference), with
   * its tokens and the hash of the chain before it ('' for a first block); a
   * hash already listed is kept as it is.
   */
  insert(hash: string, block: number, parent: string, tokens: readonly number[]): void {
    if (this.byHash.has(hash)) return;
    this.pool.retain(block);
    this.byHash.set(hash, block);
    this.lru.set(hash, block);
    this.meta.set(hash, { parent, tokens: [...tokens] });
    let siblings = this.children.get(parent);
    if (!siblings) this.children.set(parent, (siblings = new Set()));
    siblings.add(hash);
  }

  /** Free the least recently used block that only the cache holds; false when there is none. */
  evictOne(): boolean {
    for (const [h, b] of this.lru) {
      if (this.pool.refCount(b) !== 1) continue;
      this.lru.delete(h);
      this.byHash.delete(h);
      const { parent } = this.meta.get(h)!;
      this.meta.delete(h);
      const siblings = this.children.get(parent)!;
      siblings.delete(h);
      if (siblings.size === 0) this.children.delete(parent);
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
