import type { TranslationPair } from '../data/translation_pairs.js';
import { translate, translateAsync, type TranslateOptions, type Translation } from '../generate/translate.js';
import { inEvalMode } from '../nn/eval_mode.js';
import type { Transformer } from '../models/transformer.js';
import type { PieceTokenizer } from '../tokenizers/piece.js';

export interface ExactMatch {
  correct: number;
  total: number;
  /** correct / total. */
  accuracy: number;
  /** A few of the misses, for the log. */
  misses: Array<{ source: string; expected: string; got: string }>;
}

/** The share of pairs whose translation equals the target exactly, in eval mode (host backends). */
export function exactMatch(model: Transformer, tokenizer: PieceTokenizer, pairs: TranslationPair[], o: TranslateOptions = {}): ExactMatch {
  return inEvalMode(model, () => scored(pairs, translate(model, tokenizer, pairs.map((p) => p.source), o)));
}

/** exactMatch on any backend (webgpu: the model's weights on the device). */
export function exactMatchAsync(model: Transformer, tokenizer: PieceTokenizer, pairs: TranslationPair[], o: TranslateOptions = {}): Promise<ExactMatch> {
  return inEvalMode(model, () => translateAsync(model, tokenizer, pairs.map((p) => p.source), o).then((got) => scored(pairs, got)));
}

function scored(pairs: TranslationPair[], got: Translation[]): ExactMatch {
  const misses: ExactMatch['misses'] = [];
  let correct = 0;
  pairs.forEach((p, i) => {
    if (got[i]!.text === p.target) correct++;
    else if (misses.length < 5) misses.push({ source: p.source, expected: p.target, got: got[i]!.text });
  });
  return { correct, total: pairs.length, accuracy: pairs.length ? correct / pairs.length : 0, misses };
}
