import { KVCache, type KVCacheShape } from '../generate/kv_cache.js';

/** Capacities are rounded up to this many positions, so caches of similar requests can be reused. */
const GRANULE = 32;

/**
 * Reuses the single-row KV caches of finished sequences. A cache is several
 * megabytes for a large model; allocating one per request and leaving the old
 * ones to the garbage collector makes resident memory climb under steady load
 * until a collection catches up. Kept caches are bounded (`max`), and a
 * reused one is only reset: attention never reads past the filled slots.
 */
export class KVCachePool {
  private readonly free = new Map<number, KVCache[]>();
  private kept = 0;

  constructor(
    private readonly config: KVCacheShape,
    private readonly max: number,
  ) {}

  /** An empty cache of at least `positions` slots (at most block_size). */
  take(positions: number): KVCache {
    const capacity = Math.min(this.config.block_size, Math.ceil(positions / GRANULE) * GRANULE);
    const cache = this.free.get(capacity)?.pop();
    if (!cache) return new KVCache(this.config, 1, capacity);
    this.kept--;
    cache.reset();
    return cache;
  }

  /** Hand back a cache nobody uses any more. */
  give(cache: KVCache): void {
    if (this.kept >= this.max) return;
    let list = this.free.get(cache.capacity);
    if (!list) this.free.set(cache.capacity, (list = []));
    list.push(cache);
    this.kept++;
  }
}
