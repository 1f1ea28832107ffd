import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Rng } from '../src/util/rng.js';
import { Tensor } from '../src/tensor/tensor.js';
import { add, backward, concat, matmul, packedAttention, scale, attention, slice, softmax, split, sum, mul, transpose } from '../src/tensor/index.js';
import { assertClose, randn } from './helpers.js';

/** Attention spelled out op by op, as the article draws it: scores, mask, softmax, weighted sum. */
function composedAttention(q: Tensor, k: Tensor, v: Tensor, nHead: number, causal: boolean): Tensor {
  const [, T, C] = q.shape as [number, number, number];
  const hd = C / nHead;
  const mask = new Tensor(new Float32Array(T * T).map((_, i) => (causal && i % T > Math.floor(i / T) ? -Infinity : 0)), [T, T]);
  const heads: Tensor[] = [];
  for (let h = 0; h < nHead; h++) {
    const qh = slice(q, 2, h * hd, (h + 1) * hd);
    const kh = slice(k, 2, h * hd, (h + 1) * hd);
    const vh = slice(v, 2, h * hd, (h + 1) * hd);
    const scores = add(scale(matmul(qh, transpose(kh, 1, 2)), 1 / Math.sqrt(hd)), mask);
    heads.push(matmul(softmax(scores), vh));
  }
  return concat(heads, 2);
}

describe('fused attention equals the composed ops', () => {
  for (const causal of [true, false]) {
    it(`values and gradients agree (causal: ${causal})`, () => {
      const rng = new Rng(3);
      const mk = () => [randn([2, 7, 8], rng), randn([2, 7, 8], rng), randn([2, 7, 8], rng)] as const;
      const [q, k, v] = mk();
      const R = randn([2, 7, 8], rng, 1, false);
      const fused = attention(q, k, v, { nHead: 2, causal });
      backward(sum(mul(fused, R)));
      const grads1 = [q, k, v].map((t) => Float32Array.from(t.grad!));
      for (const t of [q, k, v]) t.grad = null;
      const composed = composedAttention(q, k, v, 2, causal);
      backward(sum(mul(composed, R)));
      assertClose(fused.data, composed.data, 1e-5, 'output');
      [q, k, v].forEach((t, i) => assertClose(t.grad!, grads1[i]!, 1e-5, `grad ${'qkv'[i]}`));
    });
  }

  it('packed attention (q, k, v read in place from one [B, T, 3C] tensor) equals split + attention, values and gradients', () => {
    const rng = new Rng(5);
    const qkv = randn([2, 9, 24], rng);
    const R = randn([2, 9, 8], rng, 1, false);
    const packed = packedAttention(qkv, { nHead: 2, causal: true });
    // used twice, so the second backward contribution adds into the first
    backward(sum(mul(add(packed, packed), R)));
    const g1 = Float32Array.from(qkv.grad!);
    qkv.grad = null;
    const [q, k, v] = split(qkv, 3, -1) as [Tensor, Tensor, Tensor];
    const plain = attention(q, k, v, { nHead: 2, causal: true });
    backward(sum(mul(add(plain, plain), R)));
    assertClose(packed.data, plain.data, 1e-6, 'output');
    assertClose(g1, qkv.grad!, 1e-6, 'gradient');
  });

  it('a causal position ignores the future', () => {
    const rng = new Rng(4);
    const q = randn([1, 4, 4], rng, 1, false);
    const k = randn([1, 4, 4], rng, 1, false);
    const v = randn([1, 4, 4], rng, 1, false);
    const a = attention(q, k, v, { nHead: 1, causal: true });
    v.data[3 * 4] += 10; // change the last position's value
    const b = attention(q, k, v, { nHead: 1, causal: true });
    assert.deepEqual(Array.from(a.data.subarray(0, 12)), Array.from(b.data.subarray(0, 12)));
    assert.notEqual(a.data[12], b.data[12]);
  });
});
