import { createHash } from 'node:crypto';
import { UserError } from '../util/errors.js';

/** One translation example: a source text and its target text. */
export interface TranslationPair {
  source: string;
  target: string;
}

/**
 * Parse tab-separated pairs, one per line: "source<TAB>target". Blank lines
 * are skipped; a line without exactly one tab, or with an empty side, is an
 * error naming its line number.
 */
export function parsePairsTSV(text: string, source = 'pairs'): TranslationPair[] {
  const pairs: TranslationPair[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const where = `${source}:${i + 1}`;
    const cols = line.split('\t');
    if (cols.length < 2) throw new UserError(`${where}: no tab; each line must be "source<TAB>target"`);
    if (cols.length > 2) throw new UserError(`${where}: ${cols.length - 1} tabs; each line must be "source<TAB>target" with exactly one`);
    const [s, t] = cols.map((c) => c.trim()) as [string, string];
    if (!s) throw new UserError(`${where}: the source (before the tab) is empty`);
    if (!t) throw new UserError(`${where}: the target (after the tab) is empty`);
    pairs.push({ source: s, target: t });
  });
  if (pairs.length === 0) throw new UserError(`${source}: no pairs (expected lines "source<TAB>target")`);
  return pairs;
}

/** Swap source and target: the same data for the other direction. */
export const reversePairs = (pairs: TranslationPair[]): TranslationPair[] => pairs.map((p) => ({ source: p.target, target: p.source }));

/**
 * A held-out split that depends only on the source text (a hash of it), so
 * it stays the same across runs, seeds and file orderings: about 1 in
 * `every` sources is held out, and a repeated source is always on one side.
 */
export function splitTranslationPairs(pairs: TranslationPair[], every = 10): { train: TranslationPair[]; heldOut: TranslationPair[] } {
  const train: TranslationPair[] = [];
  const heldOut: TranslationPair[] = [];
  for (const p of pairs) (createHash('sha256').update(p.source).digest().readUInt32BE(0) % every === 0 ? heldOut : train).push(p);
  if (train.length === 0) throw new UserError(`all ${pairs.length} pairs fell in the held-out split; give more pairs`);
  return { train, heldOut };
}
