import { fablesCorpus } from '../data/fables.js';
import { passagePairs } from '../data/passage_pairs.js';
import { splitPairs, type PairSplit } from '../data/positive_pairs.js';
import { templatePairs } from '../data/template_pairs.js';
import { readTextFile } from '../io/read_text.js';

/** Fraction of the groups (meanings, passages) held out for recall@1. */
const HELD_OUT = 0.1;

/**
 * Where an embedder's pairs come from, as data: recorded in training.json so
 * `attn embed eval` can rebuild exactly the same held-out split.
 */
export type PairSpec =
  | { task: 'templates'; pairs: number; seed: number }
  | { task: 'passages'; file: string; pairs: number; seed: number; passageWords: number; windowWords: number };

/** The built-in fables corpus stands in for a file named this. */
export const FABLES = 'builtin:fables';

export function loadPairs(spec: PairSpec): PairSplit {
  if (spec.task === 'templates') return splitPairs(templatePairs(spec.pairs, spec.seed), HELD_OUT);
  const text = spec.file === FABLES ? fablesCorpus(400_000) : readTextFile(spec.file);
  return splitPairs(passagePairs(text, { count: spec.pairs, seed: spec.seed, passageWords: spec.passageWords, windowWords: spec.windowWords }), HELD_OUT);
}

export function describeSpec(spec: PairSpec): string {
  return spec.task === 'templates' ? 'generated paraphrase templates' : `passage windows of ${spec.file}`;
}
