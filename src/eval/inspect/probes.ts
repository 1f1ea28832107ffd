import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { fitProbes, rSquared } from './linear_probe.js';
import type { InspectableLM } from './decoder_parts.js';
import { residualStream } from './residual_stream.js';

export interface ProbeLayer {
  name: string;
  /** R² of the position predicted from the layer's vectors, on held-out windows. */
  positionR2: number;
  /** Accuracy of "the next token starts with a vowel" (prediction > ½), on held-out windows. */
  vowelAccuracy: number;
}

export interface Probes {
  layers: ProbeLayer[];
  /** Accuracy of always answering the commoner of vowel / not vowel on the held-out rows: the bar to beat. */
  vowelBaseline: number;
}

const VOWELS = /^[\s]*[aeiouAEIOU]/;

/**
 * A linear probe per layer, for two properties: the position of the token in
 * its window (does the stream know where it is?) and whether the next token
 * starts with a vowel (does it know what is coming?). The first ¾ of the
 * windows fit the probes, the last ¼ score them.
 */
export function probeLayers(model: InspectableLM, tokenizer: Tokenizer, x: Int32Array, y: Int32Array, [B, T]: [number, number]): Probes {
  const rows = B * T;
  const trainRows = Math.max(1, Math.floor((B * 3) / 4)) * T;
  if (trainRows >= rows) throw new Error('probes need at least 2 windows');
  const position = Float64Array.from({ length: rows }, (_, r) => (r % T) / Math.max(1, T - 1));
  const vowel = Float64Array.from(y, (id) => (VOWELS.test(tokenizer.decode([id])) ? 1 : 0));
  const heldVowel = vowel.subarray(trainRows);
  const ones = heldVowel.reduce((a, b) => a + b, 0);
  const vowelBaseline = Math.max(ones, heldVowel.length - ones) / heldVowel.length;
  const layers = residualStream(model, x, [B, T]).map((h, i) => {
    const C = h.shape[2]!;
    const { predictions: [pos, vow] } = fitProbes(h.data, rows, C, [position, vowel], trainRows);
    const right = vow!.filter((p, r) => (p > 0.5 ? 1 : 0) === heldVowel[r]).length;
    return { name: i === 0 ? 'embeddings' : `block ${i}`, positionR2: rSquared(position.subarray(trainRows), pos!), vowelAccuracy: right / heldVowel.length };
  });
  return { layers, vowelBaseline };
}
