/**
 * The article, section "Layer normalization": take a vector's mean M and
 * standard deviation S, and replace every entry x by (x − M) / S, so the
 * vector has mean 0 and spread 1 whatever came before; then a learned scale
 * and shift per entry. Here with the library's layerNorm op.
 *
 *   npm run build && node dist/examples/layer_norm.js
 */
import { noGrad } from '../src/tensor/autograd.js';
import { layerNorm } from '../src/tensor/ops/layernorm.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { vec } from './format.js';
import { isMain } from './is_main.js';

export const EXAMPLE = [2, 4, 6, 8];

/** Mean M and standard deviation S (over the n entries, as LayerNorm takes it). */
export function meanAndSpread(xs: ArrayLike<number>): { M: number; S: number } {
  const n = xs.length;
  const M = Array.from(xs).reduce((a, b) => a + b, 0) / n;
  const S = Math.sqrt(Array.from(xs).reduce((a, x) => a + (x - M) ** 2, 0) / n);
  return { M, S };
}

/** LayerNorm of one vector: (x − M) / S · gain + shift (gain 1, shift 0 unless given). */
export function normalize(xs: number[], gain?: number[], shift?: number[]): number[] {
  const n = xs.length;
  return noGrad(() => [...layerNorm(Tensor.from(xs, [1, n]), gain ? Tensor.from(gain) : null, shift ? Tensor.from(shift) : null).data]);
}

/** A vector with a large mean and spread (mean ≈ 3, spread ≈ 5): the "before" of the histogram. */
export function wideVector(n = 64, seed = 7): number[] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => 3 + 5 * rng.normal());
}

/** Counts of values in `bins` equal bins over [lo, hi) (values outside go to the end bins). */
export function histogram(xs: number[], lo: number, hi: number, bins: number): number[] {
  const counts = new Array<number>(bins).fill(0);
  for (const x of xs) counts[Math.min(bins - 1, Math.max(0, Math.floor(((x - lo) / (hi - lo)) * bins)))]!++;
  return counts;
}

function main(): void {
  const { M, S } = meanAndSpread(EXAMPLE);
  console.log(`x = ${vec(EXAMPLE, 0)}: M = ${M}, S = √((9+1+1+9)/4) = ${S.toFixed(3)}`);
  console.log(`(x − M) / S = ${vec(normalize(EXAMPLE))}`);
  console.log(`then a learned gain (1, 1, 2, 2) and shift (0, 0, 0, 1): ${vec(normalize(EXAMPLE, [1, 1, 2, 2], [0, 0, 0, 1]))}`);
  const before = wideVector();
  const after = normalize(before);
  const b = meanAndSpread(before);
  const a = meanAndSpread(after);
  console.log(`\n64 values: before mean ${b.M.toFixed(3)}, spread ${b.S.toFixed(3)}; after mean ${a.M.toFixed(3)}, spread ${a.S.toFixed(3)}`);
  const bar = (c: number[]): string => c.map((n) => '█'.repeat(n)).join('\n    ');
  console.log(`before (−12…18, bins of 2):\n    ${bar(histogram(before, -12, 18, 15))}`);
  console.log(`after  (−3…3, bins of 0.4):\n    ${bar(histogram(after, -3, 3, 15))}`);
}

if (isMain(import.meta.url)) main();
