/**
 * The article, section "Softmax": scores become probabilities — raise e to
 * each score and divide by the total. With two choices, one score fixed at 0,
 * softmax is the logistic function 1 / (1 + e^−z). Dividing the scores by a
 * temperature before softmax makes the choice sharper (T < 1) or flatter (T > 1).
 *
 *   npm run build && node dist/examples/softmax.js
 */
import { noGrad } from '../src/tensor/autograd.js';
import { scale } from '../src/tensor/ops/elementwise.js';
import { softmax } from '../src/tensor/ops/softmax.js';
import { Tensor } from '../src/tensor/tensor.js';
import { vec } from './format.js';
import { isMain } from './is_main.js';

/** The scores the example starts from (three possible next characters). */
export const SCORES = [2.0, 1.0, 0.1];

/** softmax(scores / T), with the library's softmax op. */
export function softmaxWithTemperature(scores: number[], temperature = 1): number[] {
  return noGrad(() => [...softmax(scale(Tensor.from(scores, [1, scores.length]), 1 / temperature)).data]);
}

/** The logistic function, the article's "squash into 0…1" for one output. */
export const logistic = (z: number): number => 1 / (1 + Math.exp(-z));

/** Softmax over the two scores (z, 0): its first probability, which equals logistic(z). */
export const twoWaySoftmax = (z: number): number => softmaxWithTemperature([z, 0])[0]!;

/** The temperatures the example (and the playground's slider) shows. */
export const TEMPERATURES = [0.5, 1, 2, 5];

function main(): void {
  const p = softmaxWithTemperature(SCORES);
  const exps = SCORES.map((s) => Math.exp(s));
  const total = exps.reduce((a, b) => a + b, 0);
  console.log(`scores ${vec(SCORES, 1)}`);
  console.log(`e^score ${vec(exps)}, total ${total.toFixed(3)}`);
  console.log(`softmax = e^score / total = ${vec(p)} (sums to ${p.reduce((a, b) => a + b, 0).toFixed(3)})`);
  console.log('\nwith two outputs and one score held at 0, softmax is the logistic function:');
  for (const z of [-2, 0, 1, 3]) console.log(`  z = ${String(z).padStart(2)}: softmax(z, 0)₁ = ${twoWaySoftmax(z).toFixed(4)}   1/(1+e^−z) = ${logistic(z).toFixed(4)}`);
  console.log('\ntemperature T: softmax(scores / T)');
  for (const t of TEMPERATURES) console.log(`  T = ${String(t).padEnd(3)} ${vec(softmaxWithTemperature(SCORES, t))}`);
  console.log('low T picks the top score almost surely; high T spreads the choice out.');
}

if (isMain(import.meta.url)) main();
