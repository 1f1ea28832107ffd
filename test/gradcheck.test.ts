import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { backward } from '../src/tensor/autograd.js';
import { Rng } from '../src/util/rng.js';
import { Tensor } from '../src/tensor/tensor.js';
import {
  add, concat, crossEntropy, div, dropout, embedding, exp, gelu, layerNorm, linear, log, matmul, mean,
  mul, relu, reshape, rmsNorm, silu, attention, slice, softmax, split, sub, sum, tanh, transpose,
} from '../src/tensor/index.js';
import { gradCheck, randn } from './helpers.js';

describe('finite-difference gradient checks for every op', () => {
  const rng = new Rng(42);

  it('handed-over gradients (add, linear\'s addend) are each input\'s own: the same values, no shared storage', () => {
    const a = randn([3, 4], rng);
    const b = randn([3, 4], rng);
    const w = randn([4, 4], rng);
    // b reaches the loss three ways: as add's second input twice (the first time it takes the output's gradient), and as an addend.
    const y = linear(add(add(a, b), b), w, null, { addend: b });
    backward(y, Float32Array.from({ length: 12 }, (_, i) => i - 5));
    assert.ok(a.grad!.buffer !== b.grad!.buffer || a.grad!.byteOffset !== b.grad!.byteOffset, 'a and b do not share a gradient');
    const [ga, gb] = [a.grad!.slice(), b.grad!.slice()];
    a.grad!.fill(7);
    assert.deepEqual(b.grad!, gb, "writing a's gradient leaves b's alone");
    // dL/db = 2·dL/dsum + dy, dL/da = dL/dsum.
    for (let i = 0; i < 12; i++) assert.ok(Math.abs(gb[i]! - (2 * ga[i]! + (i - 5))) < 1e-4, `element ${i}`);
    gradCheck(() => linear(add(add(a, b), b), w, null, { addend: b }), [a, b, w]);
    gradCheck(() => add(a, a), [a]);
  });

  it('matmul in all four transpose combinations', () => {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const a = randn(transA ? [5, 3] : [3, 5], rng);
        const b = randn(transB ? [4, 5] : [5, 4], rng);
        gradCheck(() => matmul(a, b, { transA, transB }), [a, b]);
      }
    }
  });

  it('batched matmul, and a shared 2-D right operand', () => {
    const a = randn([2, 3, 4, 5], rng);
    const b = randn([2, 3, 5, 2], rng);
    gradCheck(() => matmul(a, b), [a, b]);
    const w = randn([5, 3], rng);
    gradCheck(() => matmul(a, w), [a, w]);
    const a2 = randn([2, 5, 4], rng);
    gradCheck(() => matmul(a2, w, { transA: true }), [a2, w]);
  });

  it('linear with and without bias', () => {
    const x = randn([2, 3, 6], rng);
    const w = randn([5, 6], rng);
    const b = randn([5], rng);
    gradCheck(() => linear(x, w, b), [x, w, b]);
    gradCheck(() => linear(x, w), [x, w]);
  });

  it('add, sub, mul, div with broadcasting', () => {
    const a = randn([2, 3, 4], rng);
    const b = randn([3, 1], rng);
    const c = randn([4], rng);
    const d = randn([2, 1, 4], rng);
    gradCheck(() => add(a, b), [a, b]);
    gradCheck(() => sub(a, c), [a, c]);
    gradCheck(() => mul(a, d), [a, d]);
    const pos = new Tensor(Float32Array.from({ length: 3 }, () => 1 + rng.random()), [3, 1], true);
    gradCheck(() => div(a, pos), [a, pos]);
  });

  it('sum and mean over an axis and over everything', () => {
    const x = randn([3, 4, 5], rng);
    gradCheck(() => sum(x, 1), [x]);
    gradCheck(() => sum(x, -1, true), [x]);
    gradCheck(() => mean(x, 0), [x]);
    gradCheck(() => mean(x), [x]);
  });

  it('reshape, transpose, slice, concat, split', () => {
    const x = randn([2, 3, 4], rng);
    const y = randn([2, 2, 4], rng);
    gradCheck(() => reshape(x, [6, -1]), [x]);
    gradCheck(() => transpose(x, 0, 2), [x]);
    gradCheck(() => transpose(x, 1, 2), [x]);
    gradCheck(() => slice(x, 1, 1, 3), [x]);
    gradCheck(() => concat([x, y], 1), [x, y]);
    gradCheck(() => split(x, 2, -1)[1]!, [x]);
  });

  it('exp, log, relu, tanh, gelu, silu', () => {
    const x = randn([10], rng);
    gradCheck(() => exp(x), [x]);
    gradCheck(() => tanh(x), [x]);
    gradCheck(() => gelu(x), [x]);
    gradCheck(() => silu(x), [x]);
    // Keep relu's inputs away from its kink at 0, and log's inputs positive.
    const away = new Tensor(Float32Array.from(x.data, (v) => (v >= 0 ? v + 0.1 : v - 0.1)), [10], true);
    gradCheck(() => relu(away), [away]);
    const pos = new Tensor(Float32Array.from(x.data, (v) => Math.abs(v) + 0.5), [10], true);
    gradCheck(() => log(pos), [pos]);
  });

  it('softmax over the last axis', () => {
    const x = randn([3, 7], rng);
    gradCheck(() => softmax(x), [x]);
  });

  it('cross-entropy, including ignored targets', () => {
    const logits = randn([6, 5], rng);
    const targets = Int32Array.of(0, 4, 2, -1, 3, -1);
    gradCheck(() => crossEntropy(logits, targets), [logits]);
    const other = Int32Array.of(1, 1, 9, 0, 2, 9);
    gradCheck(() => crossEntropy(logits, other, { ignoreIndex: 9 }), [logits]);
  });

  it('embedding with repeated ids (scatter-add)', () => {
    const w = randn([5, 3], rng);
    const ids = Int32Array.of(1, 3, 1, 0, 1);
    gradCheck(() => embedding(w, ids), [w]);
  });

  it('layer norm with and without affine parameters', () => {
    const x = randn([4, 6], rng, 2);
    const w = randn([6], rng);
    const b = randn([6], rng);
    gradCheck(() => layerNorm(x, w, b), [x, w, b]);
    gradCheck(() => layerNorm(x, null, null), [x]);
  });

  it('RMS norm with and without a weight', () => {
    const x = randn([4, 6], rng, 2);
    const w = randn([6], rng);
    gradCheck(() => rmsNorm(x, w, 1e-5), [x, w]);
    gradCheck(() => rmsNorm(x, null), [x]);
  });

  it('dropout (same seeded mask at every probe)', () => {
    const x = randn([20], rng);
    gradCheck(() => dropout(x, 0.3, new Rng(5), true), [x]);
  });

  it('fused attention, causal and not', () => {
    const q = randn([2, 5, 6], rng);
    const k = randn([2, 5, 6], rng);
    const v = randn([2, 5, 6], rng);
    gradCheck(() => attention(q, k, v, { nHead: 2, causal: true }), [q, k, v]);
    gradCheck(() => attention(q, k, v, { nHead: 3, causal: false }), [q, k, v]);
  });
});

describe('the gradient checker itself', () => {
  it('rejects a wrong backward', async () => {
    const { record } = await import('../src/tensor/autograd.js');
    const x = randn([4], new Rng(1));
    // y = x², with a deliberately wrong derivative (x instead of 2x).
    const badSquare = (): Tensor => {
      const out = new Tensor(Float32Array.from(x.data, (v) => v * v), [4]);
      return record(out, [x], 'bad', () => {
        const g = x.ensureGrad();
        for (let i = 0; i < 4; i++) g[i] = g[i]! + out.grad![i]! * x.data[i]!;
      });
    };
    const { throws } = await import('node:assert/strict');
    throws(() => gradCheck(badSquare, [x]), /analytic/);
  });
});
