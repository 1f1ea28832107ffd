import type { TranslationPair } from '../data/translation_pairs.js';
import { translate, type TranslateOptions } from '../generate/translate.js';
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

/** The share of pairs whose translation equals the target exactly (the model is put in eval mode and back). */
export function exactMatch(model: Transformer, tokenizer: PieceTokenizer, pairs: TranslationPair[], o: TranslateOptions = {}): ExactMatch {
  const wasTraining = model.training;
  model.eval();
  try {
    const got = translate(model, tokenizer, pairs.map((p) => p.source), o);
    const misses: ExactMatch['misses'] = [];
    let correct = 0;
    pairs.forEach((p, i) => {
      if (got[i]!.text === p.target) correct++;
      else if (misses.length < 5) misses.push({ source: p.source, expected: p.target, got: got[i]!.text });
    });
    return { correct, total: pairs.length, accuracy: pairs.length ? correct / pairs.length : 0, misses };
  } finally {
    model.train(wasTraining);
  }
}
