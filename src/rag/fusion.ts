/**
 * Reciprocal Rank Fusion (Cormack, Clarke & Büttcher 2009): each list gives
 * an item 1 / (k + rank) for the rank (from 1) it has there, and items are
 * ordered by the sum. Only ranks are used, so a BM25 score and a cosine —
 * numbers on unrelated scales — combine without calibration; k = 60 damps
 * the advantage of the very top ranks so that an item both lists place well
 * beats one that a single list places first.
 */

export const RRF_K = 60;

export interface Fused<T> {
  item: T;
  score: number;
  /** The item's rank (from 1) in each input list, undefined where it is absent. */
  ranks: Array<number | undefined>;
}

/**
 * `weights` (one per list, default all 1) scale each list's 1 / (k + rank):
 * weighted RRF, for when one list is known (measured on questions of one's
 * own, not the ones reported) to be the better one.
 */
export function reciprocalRankFusion<T>(lists: ReadonlyArray<readonly T[]>, keyOf: (item: T) => string, k = RRF_K, weights?: readonly number[]): Array<Fused<T>> {
  if (weights && weights.length !== lists.length) throw new Error(`${weights.length} fusion weights for ${lists.length} lists`);
  const byKey = new Map<string, Fused<T>>();
  lists.forEach((list, l) => {
    list.forEach((item, i) => {
      const key = keyOf(item);
      let f = byKey.get(key);
      if (!f) byKey.set(key, (f = { item, score: 0, ranks: new Array(lists.length).fill(undefined) }));
      if (f.ranks[l] !== undefined) return; // a list that repeats an item counts its best rank only
      f.ranks[l] = i + 1;
      f.score += (weights?.[l] ?? 1) / (k + i + 1);
    });
  });
  // Ties (same ranks in mirrored lists) are broken by the best single rank, then by key, so the order is deterministic.
  const best = (f: Fused<T>) => Math.min(...f.ranks.map((r) => r ?? Infinity));
  return [...byKey.entries()]
    .sort(([ka, a], [kb, b]) => b.score - a.score || best(a) - best(b) || (ka < kb ? -1 : ka > kb ? 1 : 0))
    .map(([, f]) => f);
}
