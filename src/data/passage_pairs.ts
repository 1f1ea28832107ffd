import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { Pair } from './positive_pairs.js';

export interface PassageOptions {
  /** Words per passage: the text is cut into consecutive passages of this many words. */
  passageWords: number;
  /** Words per window; a pair is two windows of one passage. */
  windowWords: number;
  /** Pairs to draw (several per passage when there are fewer passages). */
  count: number;
  seed: number;
}

/**
 * Self-supervised pairs from any text: two windows of the same passage are a
 * positive pair (they share topic, names and style); windows of other
 * passages are negatives. The windows of a pair never overlap, so a copy of
 * the words does not give the answer away. Keyed by passage number.
 */
export function passagePairs(text: string, o: PassageOptions): Pair[] {
  if (o.windowWords * 2 > o.passageWords) throw new UserError(`a passage of ${o.passageWords} words cannot hold two windows of ${o.windowWords}`);
  const words = text.split(/\s+/).filter((w) => w.length > 0);
  const passages = Math.floor(words.length / o.passageWords);
  if (passages < 20) throw new UserError(`the text has ${words.length} words: too short for passages of ${o.passageWords} words (need at least 20 passages)`);
  const rng = new Rng(o.seed);
  const pairs: Pair[] = [];
  for (let i = 0; i < o.count; i++) {
    const p = i % passages;
    const start = p * o.passageWords;
    // Two non-overlapping windows: the first somewhere in the first part, the second after it.
    const first = rng.int(o.passageWords - 2 * o.windowWords + 1);
    const second = first + o.windowWords + rng.int(o.passageWords - first - 2 * o.windowWords + 1);
    const window = (at: number) => words.slice(start + at, start + at + o.windowWords).join(' ');
    const [a, b] = rng.random() < 0.5 ? [window(first), window(second)] : [window(second), window(first)];
    pairs.push({ anchor: a, positive: b, key: `passage ${p}` });
  }
  return pairs;
}
