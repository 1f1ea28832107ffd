import type { KVCacheShape } from '../kv_cache.js';
import { KVBlockPool } from './block_pool.js';
import { PagedSequence } from './paged_sequence.js';
import { PrefixCache } from './prefix_cache.js';

/** A paged KV cache's size: blocks × tokens per block. */
export interface PagedKVOptions {
  /** Token slots per block (default 16, as vLLM). */
  blockTokens?: number;
  /** Blocks in the pool (default: room for `defaultSequences` full contexts, at most DEFAULT_POOL_BYTES of them, at least one context). */
  blocks?: number;
  /** Share the full blocks of common prompt prefixes (default true). */
  prefixSharing?: boolean;
}

/** What /metrics shows of a pool. */
export interface PagedKVStats {
  blocks: number;
  blockTokens: number;
  used: number;
  free: number;
  /** Blocks held by two sequences or more (a shared prefix). */
  shared: number;
  /** Blocks listed in the prefix cache. */
  cached: number;
  /** Prompt lookups that reused cached blocks, and the prompt tokens they did not have to prefill. */
  prefixHits: number;
  prefixHitTokens: number;
  /** Most blocks in use at once so far. */
  peakUsed: number;
}

export const DEFAULT_BLOCK_TOKENS = 16;
/**
 * The default pool's ceiling. The pool's arrays are allocated zeroed and the
 * operating system commits their pages only when first written, so resident
 * memory follows the blocks actually used; the ceiling bounds what a busy
 * server can come to hold (a 124M GPT-2 keeps 72 KiB per token: ≈ 14 000 tokens).
 */
export const DEFAULT_POOL_BYTES = 1 << 30;

/**
 * One model's KV memory for serving: a block pool, its prefix cache, and the
 * admission arithmetic a scheduler needs (block_pool.ts, prefix_cache.ts,
 * paged_sequence.ts are the mechanisms; this is the policy). A request is
 * admitted when the blocks its prompt still needs are free or can be freed by
 * evicting unused prefixes, keeping one spare block per running sequence so
 * that decoding sequences can grow; a request that could not fit even alone
 * is refused up front (`tooBig`).
 */
export class PagedKV {
  readonly pool: KVBlockPool;
  readonly prefixes: PrefixCache | null;
  private peak = 0;

  constructor(
    private readonly config: KVCacheShape,
    opts: PagedKVOptions,
    /** Full contexts the default pool holds (the scheduler's batch: what contiguous caches would need at worst). */
    defaultSequences: number,
  ) {
    const blockTokens = opts.blockTokens ?? DEFAULT_BLOCK_TOKENS;
    const width = (config.head_dim ?? config.n_embd / config.n_head) * (config.n_kv_head ?? config.n_head);
    const blockBytes = config.n_layer * 2 * blockTokens * width * 4;
    const context = Math.ceil(config.block_size / blockTokens);
    const blocks = opts.blocks ?? Math.max(context, Math.min(defaultSequences * context, Math.floor(DEFAULT_POOL_BYTES / blockBytes)));
    this.pool = new KVBlockPool(config, blockTokens, blocks);
    this.prefixes = opts.prefixSharing === false ? null : new PrefixCache(this.pool);
  }

  /** Blocks a sequence of `tokens` positions needs. */
  blocksFor(tokens: number): number {
    return Math.ceil(tokens / this.pool.blockTokens);
  }

  /** A one-line reason when a sequence of up to `tokens` positions cannot fit in the whole pool; null when it can. */
  tooBig(tokens: number): string | null {
    const need = this.blocksFor(Math.min(tokens, this.config.block_size));
    if (need <= this.pool.blocks) return null;
    const { blocks, blockTokens } = this.pool;
    return `this request needs up to ${need} KV cache blocks (${Math.min(tokens, this.config.block_size)} tokens: its prompt and max_tokens) but the pool holds ${blocks} blocks of ${blockTokens} tokens (${blocks * blockTokens} tokens); lower max_tokens, shorten the prompt, or serve with a larger --kv-pool-blocks`;
  }

  /**
   * A block table for `tokens` (a prompt, or a preempted sequence's prompt
   * and output), starting from its longest cached prefix, when the pool has
   * room for the rest beside `running` growing sequences; null (and nothing
   * held) when it has not yet.
   */
  open(tokens: readonly number[], running: number): PagedSequence | null {
    const seq = new PagedSequence(this.pool, this.prefixes, this.config.block_size);
    const cached = seq.adoptPrefix(tokens);
    // New blocks for the rest, one more when the last adopted block must be copied before its last slot is rewritten.
    const need = this.blocksFor(tokens.length) - seq.table.length + (cached < seq.table.length * this.pool.blockTokens ? 1 : 0);
    if (need + running > this.pool.freeBlocks + (this.prefixes?.evictable ?? 0)) {
      seq.free();
      return null;
    }
    return seq;
  }

  /** Note the blocks in use (after each step), for the peak. */
  observe(): void {
    this.peak = Math.max(this.peak, this.pool.usedBlocks);
  }

  stats(): PagedKVStats {
    const cachedBlocks = new Set(this.prefixes?.blocks() ?? []);
    let shared = 0;
    for (let b = 0; b < this.pool.blocks; b++) if (this.pool.refCount(b) - (cachedBlocks.has(b) ? 1 : 0) >= 2) shared++;
    return {
      blocks: this.pool.blocks,
      blockTokens: this.pool.blockTokens,
      used: this.pool.usedBlocks,
      free: this.pool.freeBlocks,
      shared,
      cached: cachedBlocks.size,
      prefixHits: this.prefixes?.hits ?? 0,
      prefixHitTokens: this.prefixes?.hitTokens ?? 0,
      peakUsed: Math.max(this.peak, this.pool.usedBlocks),
    };
  }

  /** Bytes of one block, all layers' keys and values. */
  get blockBytes(): number {
    return this.pool.k.length * 2 * this.pool.blockTokens * this.pool.width * Float32Array.BYTES_PER_ELEMENT;
  }
}
