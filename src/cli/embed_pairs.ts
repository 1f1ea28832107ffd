import { resolve } from 'node:path';
import { fablesCorpus } from '../data/fables.js';
import { passagePairs } from '../data/passage_pairs.js';
import { splitPairs, type PairSplit } from '../data/positive_pairs.js';
import { templatePairs } from '../data/template_pairs.js';
import { readTextFile } from '../io/read_text.js';
import { inverseClozePairs, splitBySentence } from '../data/inverse_cloze.js';
import { isSkipped, listFiles, readDocument } from '../rag/documents.js';
import { UserError } from '../util/errors.js';

/** Fraction of the groups (meanings, passages) held out for recall@1. */
const HELD_OUT = 0.1;

/**
 * Where an embedder's pairs come from, as data: recorded in training.json so
 * `attn embed eval` can rebuild exactly the same held-out split.
 */
export type PairSpec =
  | { task: 'templates'; pairs: number; seed: number }
  | { task: 'passages'; file: string; pairs: number; seed: number; passageWords: number; windowWords: number }
  | { task: 'corpus'; files: string[]; pairs: number; seed: number; passageWords: number; keyBy?: 'document'; multiFactRate?: number; neighbours?: number; describedRate?: number; keepRate?: number; multiKeepRate?: number; hardNegatives?: boolean | 'facts'; untitledRate?: number; titleRate?: number; samePassageRate?: number };

/** The built-in fables corpus stands in for a file named this. */
export const FABLES = 'builtin:fables';

/** The spec as training.json records it: its files as absolute paths, so `attn embed eval --model DIR` finds them from any directory. */
export function recordedSpec(spec: PairSpec): PairSpec {
  if (spec.task === 'passages') return spec.file === FABLES ? spec : { ...spec, file: resolve(spec.file) };
  if (spec.task === 'corpus') return { ...spec, files: spec.files.map((f) => resolve(f)) };
  return spec;
}

export function loadPairs(spec: PairSpec): PairSplit {
  if (spec.task === 'templates') return splitPairs(templatePairs(spec.pairs, spec.seed), HELD_OUT);
  // Pairs keyed by document are split by sentence, as `attn rag demo` trains them (inverse_cloze.ts).
  if (spec.task === 'corpus') return spec.keyBy === 'document' ? splitBySentence(corpusPairs(spec), HELD_OUT) : splitPairs(corpusPairs(spec), HELD_OUT);
  const text = spec.file === FABLES ? fablesCorpus(400_000) : readTextFile(spec.file);
  return splitPairs(passagePairs(text, { count: spec.pairs, seed: spec.seed, passageWords: spec.passageWords, windowWords: spec.windowWords }), HELD_OUT);
}

/** Inverse-cloze pairs from the user's documents (the files `attn rag index` would read; unreadable ones are skipped with a message). */
function corpusPairs(spec: Extract<PairSpec, { task: 'corpus' }>) {
  const texts: string[] = [];
  for (const path of listFiles(spec.files)) {
    const doc = readDocument(path);
    if (isSkipped(doc)) process.stderr.write(`skipping ${doc.source}: ${doc.reason}\n`);
    else texts.push(doc.text);
  }
  if (texts.length === 0) throw new UserError(`--corpus: no readable text among ${spec.files.join(', ')}`);
  try {
    return inverseClozePairs(texts, { passageWords: spec.passageWords, count: spec.pairs, seed: spec.seed, keyBy: spec.keyBy, multiFactRate: spec.multiFactRate, neighbours: spec.neighbours, describedRate: spec.describedRate, keepRate: spec.keepRate, multiKeepRate: spec.multiKeepRate, hardNegatives: spec.hardNegatives, untitledRate: spec.untitledRate, titleRate: spec.titleRate, samePassageRate: spec.samePassageRate });
  } catch (e) {
    throw new UserError(`--corpus: ${(e as Error).message}`);
  }
}

export function describeSpec(spec: PairSpec): string {
  if (spec.task === 'corpus') return `inverse cloze pairs of ${spec.files.length === 1 ? spec.files[0] : `${spec.files.length} paths`}`;
  return spec.task === 'templates' ? 'generated paraphrase templates' : `passage windows of ${spec.file}`;
}
