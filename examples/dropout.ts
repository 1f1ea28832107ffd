/**
 * The article, section "Dropout": while training, zero each number with
 * probability p, and multiply the survivors by 1 / (1 − p) so that on average
 * nothing changes; when using the model, do nothing. The network cannot lean
 * on any one neuron. Here with the library's dropout op.
 *
 *   npm run build && node dist/examples/dropout.js
 */
import { noGrad } from '../src/tensor/autograd.js';
import { dropout } from '../src/tensor/ops/dropout.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { vec } from './format.js';
import { isMain } from './is_main.js';

/** Dropout of `xs` with probability p, as in training (or not). */
export function applyDropout(xs: number[], p: number, { seed = 1, training = true } = {}): number[] {
  return noGrad(() => [...dropout(Tensor.from(xs), p, new Rng(seed), training).data]);
}

export interface DropoutStats {
  /** Fraction of entries zeroed. */
  zeroed: number;
  /** Mean of the output (the input is all ones, so 1 is "unchanged on average"). */
  mean: number;
}

/** Dropout on n ones: how many were zeroed, and the mean that survives. */
export function dropoutStats(p: number, n = 10000, seed = 1): DropoutStats {
  const out = applyDropout(new Array<number>(n).fill(1), p, { seed });
  return { zeroed: out.filter((v) => v === 0).length / n, mean: out.reduce((a, b) => a + b, 0) / n };
}

function main(): void {
  const x = [1, 2, 3, 4, 5, 6, 7, 8];
  const p = 0.5;
  console.log(`x = ${vec(x, 1)}`);
  console.log(`training, p = ${p}: ${vec(applyDropout(x, p), 1)}  (survivors × 1/(1−p) = ×${1 / (1 - p)})`);
  console.log(`using the model:  ${vec(applyDropout(x, p, { training: false }), 1)}  (unchanged)`);
  console.log('\non 10 000 ones:');
  for (const q of [0.1, 0.25, 0.5]) {
    const s = dropoutStats(q);
    console.log(`  p = ${q.toFixed(2)}: ${(100 * s.zeroed).toFixed(1)}% zeroed, survivors = ${(1 / (1 - q)).toFixed(3)}, mean ${s.mean.toFixed(3)}`);
  }
}

if (isMain(import.meta.url)) main();
