import { NO_MERGE, type PairTable } from './pair_table.js';

/**
 * Pieces longer than this are merged with a heap; shorter ones with a plain
 * scan for the lowest-ranked pair, which is faster when there are few pairs.
 */
const HEAP_FROM = 48;

/**
 * Byte-pair merging of one piece, in place: while some adjacent pair of ids
 * is a merge rule, replace the lowest-ranked one (the leftmost among equals)
 * by its merged id. Returns the new length; the ids are in ids[0…length).
 * Ids < 0 stand for units outside the vocabulary: they never merge.
 */
export function mergeIds(ids: Int32Array, length: number, table: PairTable): number {
  return length < HEAP_FROM ? mergeByScan(ids, length, table) : mergeByHeap(ids, length, table);
}

const rankOf = (table: PairTable, a: number, b: number): number => (a < 0 || b < 0 ? NO_MERGE : table.rank(a, b));

/** O(n²) but allocation-free: find the best pair, merge it, repeat. */
export function mergeByScan(ids: Int32Array, length: number, table: PairTable): number {
  const ranks = new Int32Array(Math.max(1, length)); // ranks[i]: rank of the pair (ids[i], ids[i+1])
  for (let i = 0; i + 1 < length; i++) ranks[i] = rankOf(table, ids[i]!, ids[i + 1]!);
  let len = length;
  while (len > 1) {
    let best = NO_MERGE;
    let at = -1;
    for (let i = 0; i + 1 < len; i++) {
      if (ranks[i]! < best) {
        best = ranks[i]!;
        at = i;
      }
    }
    if (at < 0) break;
    ids[at] = table.mergedId(ids[at]!, ids[at + 1]!);
    ids.copyWithin(at + 1, at + 2, len);
    ranks.copyWithin(at, at + 1, len - 1);
    len--;
    if (at + 1 < len) ranks[at] = rankOf(table, ids[at]!, ids[at + 1]!);
    if (at > 0) ranks[at - 1] = rankOf(table, ids[at - 1]!, ids[at]!);
  }
  return len;
}

/**
 * O(n log n): the units form a linked list; a min-heap holds candidate pairs
 * keyed by (rank, position), so the lowest rank pops first and, among equal
 * ranks, the leftmost. A merge changes its neighbours' pairs: their new pairs
 * are pushed and stale entries are skipped when popped (checked against the
 * rank the pair has now). SentencePiece-style tokenizers (Llama 2, Gemma)
 * give BPE whole sentences as one piece, where the scan would be quadratic.
 */
export function mergeByHeap(ids: Int32Array, length: number, table: PairTable): number {
  const next = new Int32Array(length);
  const prev = new Int32Array(length);
  for (let i = 0; i < length; i++) {
    next[i] = i + 1 < length ? i + 1 : -1;
    prev[i] = i - 1;
  }
  const heap = new PairHeap(length);
  for (let i = 0; i + 1 < length; i++) {
    const r = rankOf(table, ids[i]!, ids[i + 1]!);
    if (r !== NO_MERGE) heap.push(r, i);
  }
  while (heap.size > 0) {
    const rank = heap.topRank();
    const i = heap.pop();
    const j = next[i]!;
    // Stale: i was merged into its left neighbour (ids[i] = -2), or its pair changed since.
    if (ids[i] === DEAD || j < 0 || rankOf(table, ids[i]!, ids[j]!) !== rank) continue;
    ids[i] = table.mergedId(ids[i]!, ids[j]!);
    ids[j] = DEAD;
    const k = next[j]!;
    next[i] = k;
    if (k >= 0) prev[k] = i;
    const p = prev[i]!;
    if (p >= 0) {
      const r = rankOf(table, ids[p]!, ids[i]!);
      if (r !== NO_MERGE) heap.push(r, p);
    }
    if (k >= 0) {
      const r = rankOf(table, ids[i]!, ids[k]!);
      if (r !== NO_MERGE) heap.push(r, i);
    }
  }
  let len = 0;
  for (let i = 0; i >= 0 && i < length; i = next[i]!) ids[len++] = ids[i]!;
  return len;
}

/** Marks a unit merged into its left neighbour (real out-of-vocabulary units are -1). */
const DEAD = -2;

/** A binary min-heap of (rank, position) pairs in typed arrays. */
class PairHeap {
  private ranks: Int32Array;
  private positions: Int32Array;
  size = 0;

  constructor(capacity: number) {
    this.ranks = new Int32Array(Math.max(16, capacity));
    this.positions = new Int32Array(Math.max(16, capacity));
  }

  private less(a: number, b: number): boolean {
    const ra = this.ranks[a]!;
    const rb = this.ranks[b]!;
    return ra < rb || (ra === rb && this.positions[a]! < this.positions[b]!);
  }

  private swap(a: number, b: number): void {
    const r = this.ranks[a]!;
    this.ranks[a] = this.ranks[b]!;
    this.ranks[b] = r;
    const p = this.positions[a]!;
    this.positions[a] = this.positions[b]!;
    this.positions[b] = p;
  }

  push(rank: number, position: number): void {
    if (this.size === this.ranks.length) {
      const r = new Int32Array(this.size * 2);
      r.set(this.ranks);
      this.ranks = r;
      const p = new Int32Array(this.size * 2);
      p.set(this.positions);
      this.positions = p;
    }
    let i = this.size++;
    this.ranks[i] = rank;
    this.positions[i] = position;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.less(i, parent)) break;
      this.swap(i, parent);
      i = parent;
    }
  }

  topRank(): number {
    return this.ranks[0]!;
  }

  /** Remove the smallest entry; returns its position. */
  pop(): number {
    const top = this.positions[0]!;
    this.size--;
    if (this.size > 0) {
      this.ranks[0] = this.ranks[this.size]!;
      this.positions[0] = this.positions[this.size]!;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < this.size && this.less(l, m)) m = l;
        if (r < this.size && this.less(r, m)) m = r;
        if (m === i) break;
        this.swap(i, m);
        i = m;
      }
    }
    return top;
  }
}
