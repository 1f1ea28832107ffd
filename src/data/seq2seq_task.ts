import { english, german, heldOutNumbers, numberPieces, sampleTrainNumber } from './numbers_de.js';
import { reversePairs, splitTranslationPairs, type TranslationPair } from './translation_pairs.js';
import type { Rng } from '../util/rng.js';

/** Where a model's pairs came from, saved in its config so `seq2seq eval` can rebuild the held-out split. */
export type TaskSource = { task: 'numbers-de'; reverse: boolean } | { data: string; reverse: boolean };

/** A translation task: an endless (or finite) training stream, a fixed held-out set, and its word pieces. */
export interface Seq2SeqTask {
  readonly source: TaskSource;
  /** n training pairs drawn with rng. */
  sample(rng: Rng, n: number): TranslationPair[];
  /** Up to `limit` held-out pairs, always the same ones in the same order. */
  heldOut(limit: number): TranslationPair[];
  /** Texts whose characters the tokenizer must cover. */
  texts(): string[];
  /** Multi-character pieces for the tokenizer (whole words, morphemes). */
  pieces: string[];
}

const numberPair = (n: number, reverse: boolean): TranslationPair =>
  reverse ? { source: german(n), target: english(n) } : { source: english(n), target: german(n) };

/** English → German number words (or German → English with reverse). */
export function numbersTask(reverse = false): Seq2SeqTask {
  return {
    source: { task: 'numbers-de', reverse },
    sample: (rng, n) => Array.from({ length: n }, () => numberPair(sampleTrainNumber(rng), reverse)),
    heldOut: (limit) => heldOutNumbers(limit).map((n) => numberPair(n, reverse)),
    // 0 … 1000 use every character either language will ever need.
    texts: () => Array.from({ length: 1001 }, (_, n) => [english(n), german(n)]).flat(),
    pieces: numberPieces(),
  };
}

/** The user's own pairs: 9 in 10 train (drawn with replacement), 1 in 10 (by a hash of the source) are held out. */
export function pairsTask(pairs: TranslationPair[], path: string, reverse = false): Seq2SeqTask {
  const all = reverse ? reversePairs(pairs) : pairs;
  const { train, heldOut } = splitTranslationPairs(all);
  return {
    source: { data: path, reverse },
    sample: (rng, n) => Array.from({ length: n }, () => train[rng.int(train.length)]!),
    heldOut: (limit) => heldOut.slice(0, limit),
    texts: () => all.flatMap((p) => [p.source, p.target]),
    pieces: [],
  };
}
