import { backend } from '../../backend/index.js';
import { isHost, type Storage } from '../../backend/storage.js';
import { allocStorage, copyStorage, releaseStorage } from '../../tensor/tensor.js';
import { UserError } from '../../util/errors.js';
import type { KVCacheShape } from '../kv_cache.js';

/** The pool has no free block left for a sequence (serving answers it with a 4xx naming the limit). */
export class KVPoolFullError extends UserError {}

/**
 * KV memory as fixed-size blocks from one pool (PagedAttention, Kwon et al.
 * 2023): every layer's keys and values live in one array of
 * [blocks, blockTokens, nKvHead·headDim], and a sequence owns a list of block
 * ids (its block table) instead of one slab sized for its longest possible
 * length. Memory then grows with the tokens actually held, and a block can be
 * shared: each has a reference count, and goes back to the free list when
 * the last holder releases it.
 */
export class KVBlockPool {
  /** Each layer's keys and values, in the backend's storage (host arrays, or device buffers on webgpu). */
  readonly k: Storage[];
  readonly v: Storage[];
  /** Floats per token per layer: nKvHead·headDim. */
  readonly width: number;
  private readonly refs: Int32Array;
  private readonly freeList: number[];

  constructor(
    config: KVCacheShape,
    /** Tokens per block. */
    readonly blockTokens: number,
    /** Blocks in the pool. */
    readonly blocks: number,
  ) {
    if (!(Number.isInteger(blockTokens) && blockTokens >= 1 && Number.isInteger(blocks) && blocks >= 1)) throw new UserError(`a KV block pool needs ≥ 1 blocks of ≥ 1 tokens (got ${blocks} × ${blockTokens})`);
    this.width = (config.head_dim ?? config.n_embd / config.n_head) * (config.n_kv_head ?? config.n_head);
    const size = blocks * blockTokens * this.width;
    // Zeroed, committed page by page as blocks are first written (resident memory follows the blocks
    // used) — in huge pages where the backend can: 4 KB page faults made a fresh pool's first writes
    // cost a fifth of a decode step (docs/paged_kv.md).
    // On a device the pool is device memory, zeroed there, and its blocks are never read back.
    const b = backend();
    const zeroed = (): Storage => (b.device ? allocStorage(size, true) : (b.hugePageArray?.(size) ?? new Float32Array(size)));
    this.k = Array.from({ length: config.n_layer }, zeroed);
    this.v = Array.from({ length: config.n_layer }, zeroed);
    this.refs = new Int32Array(blocks);
    this.freeList = Array.from({ length: blocks }, (_, i) => blocks - 1 - i); // pop() hands out block 0 first
  }

  get freeBlocks(): number {
    return this.freeList.length;
  }

  get usedBlocks(): number {
    return this.blocks - this.freeList.length;
  }

  /** A free block with one reference, or null when none is left. */
  tryAllocate(): number | null {
    const b = this.freeList.pop();
    if (b === undefined) return null;
    this.refs[b] = 1;
    return b;
  }

  refCount(block: number): number {
    return this.refs[block]!;
  }

  retain(block: number): void {
    if (this.refs[block]! <= 0) throw new Error(`KV block ${block} is free: it cannot be shared`);
    this.refs[block]!++;
  }

  release(block: number): void {
    if (this.refs[block]! <= 0) throw new Error(`KV block ${block} released twice`);
    if (--this.refs[block]! === 0) this.freeList.push(block);
  }

  /** Copy the first `tokens` slots of every layer of block `from` into block `to` (copy-on-write). */
  copy(from: number, to: number, tokens = this.blockTokens): void {
    const n = tokens * this.width;
    const [src, dst] = [from * this.blockTokens * this.width, to * this.blockTokens * this.width];
    if (n === 0) return;
    for (const a of [...this.k, ...this.v]) {
      if (isHost(a)) {
        a.copyWithin(dst, src, src + n);
        continue;
      }
      // A device copies between two buffers, never within one: through a temporary.
      const tmp = allocStorage(n, false);
      copyStorage(a, src, tmp, 0, n);
      copyStorage(tmp, 0, a, dst, n);
      releaseStorage(tmp);
    }
  }

  /** Offset of token slot `slot` of block `block` in a layer's array. */
  offset(block: number, slot: number): number {
    return (block * this.blockTokens + slot) * this.width;
  }
}
