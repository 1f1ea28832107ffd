/**
 * The article, section "Self-attention": the output at a position, u1, is a
 * function of several inputs, e.g. u1 = F(x1, x3) — it decides for itself how
 * much of each to take. Every position makes a query ("what am I looking
 * for"), a key ("what I contain") and a value ("what I pass on"); the score
 * of position 1 for position j is q1·kj / √d, softmax turns the scores into
 * weights, and u1 is the weighted sum of the values. The library's attention
 * op does all positions at once; here it is checked against the loop.
 *
 *   npm run build && node dist/examples/self_attention.js
 */
import { noGrad } from '../src/tensor/autograd.js';
import { attention, attentionWeights } from '../src/tensor/ops/attention.js';
import { linear } from '../src/tensor/ops/linear.js';
import { Tensor } from '../src/tensor/tensor.js';
import { matrix, rowsOf, vec } from './format.js';
import { isMain } from './is_main.js';

/** Three input vectors x1, x2, x3 (think: three characters, embedded). */
export const X = [
  [1, 0, 1, 0],
  [0, 2, 0, 0],
  [1, 0, 2, 1],
];

/** The query, key and value matrices (4 → 2), chosen so that x1 looks mostly at x3. */
export const WQ = [[1, 0, 1, 0], [0, 1, 0, 1]];
export const WK = [[0, 0, 1, 0], [0, 1, 0, 0]];
export const WV = [[1, 1, 0, 0], [0, 0, 0, 1]];

export interface SelfAttentionTrace {
  q: number[][];
  k: number[][];
  v: number[][];
  /** scores[i][j] = qi·kj / √d. */
  scores: number[][];
  /** softmax of each row of scores. */
  weights: number[][];
  /** ui = Σj weights[i][j] · vj. */
  u: number[][];
}

/** Self-attention over X with one head, every number kept. */
export function selfAttention(x = X): SelfAttentionTrace {
  return noGrad(() => {
    const T = x.length;
    const xt = Tensor.from(x.flat(), [1, T, x[0]!.length]);
    const project = (w: number[][]): Tensor => linear(xt, Tensor.from(w.flat(), [w.length, w[0]!.length]));
    const [q, k, v] = [project(WQ), project(WK), project(WV)];
    const d = WQ.length;
    const qs = rowsOf(q.data, d);
    const ks = rowsOf(k.data, d);
    const scores = qs.map((qi) => ks.map((kj) => qi.reduce((s, a, c) => s + a * kj[c]!, 0) / Math.sqrt(d)));
    const weights = rowsOf(attentionWeights(q, k, { nHead: 1 }), T);
    const u = rowsOf(attention(q, k, v, { nHead: 1 }).data, d);
    return { q: qs, k: ks, v: rowsOf(v.data, d), scores, weights, u };
  });
}

function main(): void {
  const t = selfAttention();
  const names = ['x1', 'x2', 'x3'];
  t.q.forEach((_, i) => console.log(`${names[i]} ${vec(X[i]!, 0)}: query ${vec(t.q[i]!, 1)}, key ${vec(t.k[i]!, 1)}, value ${vec(t.v[i]!, 1)}`));
  console.log(`\nscores q·k / √2 (row: who looks, column: at whom):\n${matrix(t.scores, names)}`);
  console.log(`softmax of each row (the attention weights):\n${matrix(t.weights, names)}`);
  console.log(`\nu1 = ${t.weights[0]!.map((w, j) => `${w.toFixed(3)}·v${j + 1}`).join(' + ')} = ${vec(t.u[0]!)}`);
  console.log(`x1 takes ${(100 * t.weights[0]![2]!).toFixed(0)}% of x3 and ${(100 * t.weights[0]![0]!).toFixed(0)}% of itself: u1 ≈ F(x1, x3).`);
}

if (isMain(import.meta.url)) main();
