import { parseCaption, PROPERTIES } from '../data/fashion_captions.js';
import { bleu4 } from './bleu.js';

export interface CaptionScores {
  /** Captions whose class word is the reference's. */
  class_word_accuracy: number;
  /** Measured properties (brightness, size, position) the caption states as the reference does, over all captions × properties. */
  property_accuracy: number;
  /** Corpus BLEU-4 against the generated references. */
  bleu4: number;
}

/** Score written captions against the references attn wrote from the labels and measurements. */
export function scoreCaptions(written: string[], references: string[]): CaptionScores {
  let classRight = 0;
  let propertiesRight = 0;
  written.forEach((w, i) => {
    const got = parseCaption(w);
    const want = parseCaption(references[i]!);
    if (got.classWord !== null && got.classWord === want.classWord) classRight++;
    for (const p of PROPERTIES) if (got[p] !== null && got[p] === want[p]) propertiesRight++;
  });
  const n = Math.max(written.length, 1);
  return { class_word_accuracy: classRight / n, property_accuracy: propertiesRight / (n * PROPERTIES.length), bleu4: bleu4(written, references) };
}
