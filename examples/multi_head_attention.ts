/**
 * The article, section "Multi-head attention": several attention blocks side
 * by side, each with its own query, key and value matrices over its own slice
 * of the vector, so one head can follow (say) the previous character while
 * another follows the start of the word; their outputs are concatenated and
 * mixed by one more matrix. Here the library's MultiHeadAttention layer, and
 * the same result rebuilt head by head with the attention op.
 *
 *   npm run build && node dist/examples/multi_head_attention.js
 */
import { MultiHeadAttention } from '../src/nn/attention.js';
import { noGrad } from '../src/tensor/autograd.js';
import { attention, attentionWeights } from '../src/tensor/ops/attention.js';
import { concat, slice } from '../src/tensor/ops/shape.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { matrix, rowsOf } from './format.js';
import { isMain } from './is_main.js';

export const D_MODEL = 8;
export const HEADS = 2;
export const TOKENS = ['c', 'a', 't', 's'];

/** A seeded layer and four seeded input vectors. */
export function setup(seed = 5): { layer: MultiHeadAttention; x: Tensor } {
  const rng = new Rng(seed);
  const layer = new MultiHeadAttention({ d_model: D_MODEL, n_head: HEADS, dropout: 0, causal: true }, rng);
  layer.eval();
  const x = Tensor.from(Array.from({ length: TOKENS.length * D_MODEL }, () => rng.normal()), [1, TOKENS.length, D_MODEL]);
  return { layer, x };
}

export interface MultiHeadTrace {
  /** weights[h] is head h's T×T attention matrix (causal: each row sees itself and earlier). */
  weights: number[][][];
  /** The layer's output, [T, D_MODEL]. */
  output: number[][];
  /** The same output rebuilt: each head's attention on its slice, concatenated, then out_proj. */
  rebuilt: number[][];
}

export function multiHead({ layer, x } = setup()): MultiHeadTrace {
  return noGrad(() => {
    const T = x.shape[1]!;
    const hd = D_MODEL / HEADS;
    const [q, k, v] = [layer.q_proj.forward(x), layer.k_proj.forward(x), layer.v_proj.forward(x)];
    const all = attentionWeights(q, k, { nHead: HEADS, causal: true });
    const weights = Array.from({ length: HEADS }, (_, h) => rowsOf(all.subarray(h * T * T, (h + 1) * T * T), T));
    // Head by head: one-head attention over channels h·hd … (h+1)·hd of q, k and v.
    const heads = Array.from({ length: HEADS }, (_, h) => {
      const cut = (t: Tensor): Tensor => slice(t, 2, h * hd, (h + 1) * hd);
      return attention(cut(q), cut(k), cut(v), { nHead: 1, causal: true });
    });
    const rebuilt = layer.out_proj.forward(concat(heads, 2));
    return { weights, output: rowsOf(layer.forward(x).data, D_MODEL), rebuilt: rowsOf(rebuilt.data, D_MODEL) };
  });
}

function main(): void {
  const t = multiHead();
  t.weights.forEach((w, h) => console.log(`head ${h + 1} (channels ${h * (D_MODEL / HEADS)}…${(h + 1) * (D_MODEL / HEADS) - 1}), row: who looks, column: at whom\n${matrix(w, TOKENS)}`));
  console.log(`\nthe layer's output for "${TOKENS[TOKENS.length - 1]}": (${t.output[TOKENS.length - 1]!.map((v) => v.toFixed(3)).join(', ')})`);
  console.log(`rebuilt head by head:    (${t.rebuilt[TOKENS.length - 1]!.map((v) => v.toFixed(3)).join(', ')})`);
  let diff = 0;
  t.output.forEach((r, i) => r.forEach((v, j) => (diff = Math.max(diff, Math.abs(v - t.rebuilt[i]![j]!)))));
  console.log(`largest difference over all positions: ${diff.toExponential(1)}`);
}

if (isMain(import.meta.url)) main();
