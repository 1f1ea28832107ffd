import type { BPETokenizer, Merge } from './bpe.js';
import { splitterFor } from './pretokenize.js';

/**
 * The BPE merge loop as minbpe writes it, beside the one attn uses.
 *
 * BPETokenizer.encodePiece (bpe.ts) is incremental: it keeps the rank of
 * every adjacent pair in an array and, after a merge, recomputes only the two
 * pairs that touch it — O(n) work per merge, no allocation. This is the plain
 * version a reader can check it against: look at every pair, take the one
 * whose merge rule has the lowest rank, merge every occurrence of it (left to
 * right, as minbpe's `merge` does), and start again until no rule applies.
 * Both give the same ids (test/tokenizer_bpe_naive.test.ts): a rule can
 * only use tokens of lower-ranked rules, so merging all occurrences of the
 * best pair at once is merging them one at a time.
 */

/** Pair "left,right" → the lowest-ranked rule for it. */
export type MergeRanks = Map<string, { rank: number; id: number }>;

const pairKey = (left: number, right: number): string => `${left},${right}`;

export function mergeRanks(merges: ReadonlyArray<Merge>): MergeRanks {
  const ranks: MergeRanks = new Map();
  merges.forEach(([left, right, id], rank) => {
    if (!ranks.has(pairKey(left, right))) ranks.set(pairKey(left, right), { rank, id }); // a repeated rule: the first wins
  });
  return ranks;
}

/** Replace every occurrence of the pair (left, right) in `ids` by `id`, left to right. */
export function mergePair(ids: number[], left: number, right: number, id: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < ids.length; i++) {
    if (i + 1 < ids.length && ids[i] === left && ids[i + 1] === right) {
      out.push(id);
      i++; // the pair's second token is used up
    } else {
      out.push(ids[i]!);
    }
  }
  return out;
}

/** BPE on one piece's byte ids: merge the lowest-ranked pair until no rule applies. */
export function naiveMergePiece(byteIds: number[], ranks: MergeRanks): number[] {
  let ids = byteIds;
  while (ids.length >= 2) {
    let best: { left: number; right: number; rank: number; id: number } | null = null;
    for (let i = 0; i + 1 < ids.length; i++) {
      const rule = ranks.get(pairKey(ids[i]!, ids[i + 1]!));
      if (rule && (best === null || rule.rank < best.rank)) best = { left: ids[i]!, right: ids[i + 1]!, ...rule };
    }
    if (best === null) break; // nothing left to merge
    ids = mergePair(ids, best.left, best.right, best.id);
  }
  return ids;
}

/**
 * Text with no special tokens, encoded the naive way: the tokenizer's own
 * pre-tokenizer cuts it into pieces, each piece's UTF-8 bytes become byte
 * ids, and naiveMergePiece merges them.
 */
export function naiveEncodeOrdinary(tokenizer: BPETokenizer, text: string, ranks = mergeRanks(tokenizer.merges)): number[] {
  const out: number[] = [];
  const utf8 = new TextEncoder();
  splitterFor(tokenizer.pattern)(text, (start, end) => {
    const bytes = utf8.encode(text.slice(start, end));
    out.push(...naiveMergePiece(Array.from(bytes, (b) => tokenizer.byteIds[b]!), ranks));
  });
  return out;
}
