/**
 * The article, section "Positional encoding": attention by itself is blind
 * to order — shuffle the inputs and the outputs are the same vectors,
 * shuffled — so "dog bites man" and "man bites dog" would read alike. A
 * vector that depends on the position is added to each input: either learned
 * (one trained row per position, GPT-2) or fixed sinusoids of different
 * speeds (sin(pos / 10000^(2i/d)), cos(…); "Attention Is All You Need").
 *
 *   npm run build && node dist/examples/positional_encoding.js
 */
import { MultiHeadAttention } from '../src/nn/attention.js';
import { PositionalEncoding, sinusoidalTable } from '../src/nn/positional.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { matrix, rowsOf } from './format.js';
import { isMain } from './is_main.js';

export const DIM = 8;
export const WORDS = ['dog', 'bites', 'man'];

/** The sinusoidal table, [positions, DIM] row by row. */
export const sinusoids = (positions: number, dim = DIM): number[][] => rowsOf(sinusoidalTable(positions, dim), dim);

/** A fixed (seeded) vector per word, and a self-attention layer that reads them. */
function wordsAndLayer(seed = 11): { vectors: Map<string, number[]>; layer: MultiHeadAttention } {
  const rng = new Rng(seed);
  const vectors = new Map(WORDS.map((w) => [w, Array.from({ length: DIM }, () => rng.normal())]));
  const layer = new MultiHeadAttention({ d_model: DIM, n_head: 2, dropout: 0 }, rng);
  return { vectors, layer };
}

/**
 * Self-attention's output for each word of `sentence`, keyed by word, with or
 * without positions added first (`none`, `sinusoidal` or `learned`).
 */
export function attendSentence(sentence: string[], positions: 'none' | 'sinusoidal' | 'learned', seed = 11): Map<string, number[]> {
  const { vectors, layer } = wordsAndLayer(seed);
  return noGrad(() => {
    let x = Tensor.from(sentence.flatMap((w) => vectors.get(w)!), [1, sentence.length, DIM]);
    if (positions !== 'none') x = new PositionalEncoding(positions, 16, DIM, new Rng(seed + 1)).forward(x);
    const out = rowsOf(layer.forward(x).data, DIM);
    return new Map(sentence.map((w, i) => [w, out[i]!]));
  });
}

/** Largest difference between the vectors two sentences give the same words. */
export function orderEffect(a: string[], b: string[], positions: 'none' | 'sinusoidal' | 'learned'): number {
  const [ya, yb] = [attendSentence(a, positions), attendSentence(b, positions)];
  let max = 0;
  for (const [w, v] of ya) v.forEach((x, i) => (max = Math.max(max, Math.abs(x - yb.get(w)![i]!))));
  return max;
}

function main(): void {
  console.log(`sinusoidal positions, d = ${DIM} (columns: sin, cos of ever slower clocks):`);
  console.log(matrix(sinusoids(6), ['pos 0', 'pos 1', 'pos 2', 'pos 3', 'pos 4', 'pos 5']));
  const a = WORDS;
  const b = ['man', 'bites', 'dog'];
  console.log(`\n"${a.join(' ')}" vs "${b.join(' ')}": largest difference of self-attention's output for the same word`);
  for (const p of ['none', 'sinusoidal', 'learned'] as const) console.log(`  positions ${p.padEnd(10)} ${orderEffect(a, b, p).toExponential(2)}`);
  console.log('without positions the two sentences give each word the same vector: order is invisible.');
}

if (isMain(import.meta.url)) main();
