import { UserError } from '../util/errors.js';

/** Two texts that mean the same (or come from the same passage): a positive pair. */
export interface Pair {
  anchor: string;
  positive: string;
  /**
   * What the pair is about (a template's slot values, a passage's number).
   * The held-out split is decided by this key, so no meaning is ever on both sides.
   */
  key: string;
  /**
   * Pairs of one group are near-misses of each other (a meaning and its
   * variants with one slot changed): trained in the same batch they are hard
   * negatives. Defaults to the key. The held-out split keeps groups whole.
   */
  group?: string;
  /**
   * A hard negative for the anchor: a text that looks like the answer but is
   * not (inverse_cloze.ts `hardNegatives`: the passage of another document
   * that BM25 ranks first for the anchor). Trained as an extra column of the
   * loss (train/contrastive.ts); every pair of a run has one or none does.
   */
  negative?: string;
  /** The key of what `negative` is about: never a negative for an anchor with this key. */
  negativeKey?: string;
}

export interface PairSplit {
  train: Pair[];
  heldOut: Pair[];
}

/** FNV-1a: a fixed, platform-independent hash, so the split never changes between runs. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/**
 * Deterministic split by group (or by another part of the pair, `by`): about
 * `fraction` of the groups are held out, whatever the order of pairs.
 */
export function splitPairs(pairs: readonly Pair[], fraction = 0.1, by: (p: Pair) => string = groupOf): PairSplit {
  const train: Pair[] = [];
  const heldOut: Pair[] = [];
  for (const p of pairs) ((fnv1a(by(p)) % 1000) / 1000 < fraction ? heldOut : train).push(p);
  if (train.length === 0 || heldOut.length < 2) {
    throw new UserError(`too few pairs to split: ${train.length} for training and ${heldOut.length} held out (need ≥ 1 and ≥ 2)`);
  }
  return { train, heldOut };
}

export const groupOf = (p: Pair): string => p.group ?? p.key;

/** One held-out pair per key: two positives with the same meaning would make recall ambiguous. */
export function distinctKeys(pairs: readonly Pair[], limit: number): Pair[] {
  const seen = new Set<string>();
  const out: Pair[] = [];
  for (const p of pairs) {
    if (out.length >= limit) break;
    if (seen.has(p.key)) continue;
    seen.add(p.key);
    out.push(p);
  }
  return out;
}
