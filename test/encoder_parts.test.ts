import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { EncoderLayer } from '../src/nn/encoder_layer.js';
import { MultiHeadAttention } from '../src/nn/attention.js';
import { sinusoidalTable } from '../src/nn/positional.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { attention, attentionWeights } from '../src/tensor/ops/attention.js';
import { rope } from '../src/tensor/ops/rope.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, gradCheck, randn } from './helpers.js';

describe('masked (cross-)attention', () => {
  const rng = new Rng(5);

  it('an all-zero padding mask (the general masking path) equals no mask, causal or not', () => {
    const [q, k, v] = [randn([2, 7, 8], rng), randn([2, 7, 8], rng), randn([2, 7, 8], rng)];
    for (const causal of [false, true]) {
      const fused = noGrad(() => attention(q, k, v, { nHead: 2, causal }));
      const masked = noGrad(() => attention(q, k, v, { nHead: 2, causal, keyPadding: new Uint8Array(14) }));
      assertClose(masked.data, fused.data, 1e-5, `causal=${causal}`);
    }
  });

  it('a padded key changes nothing when it is masked, and its weight is 0', () => {
    const q = randn([1, 3, 4], rng);
    const k = randn([1, 5, 4], rng);
    const v = randn([1, 5, 4], rng);
    const pad = Uint8Array.from([0, 0, 0, 1, 1]);
    const full = { out: noGrad(() => attention(q, k, v, { nHead: 1, keyPadding: pad })), weights: attentionWeights(q, k, { nHead: 1, keyPadding: pad }) };
    const short = noGrad(() => attention(q, new Tensor(k.data.slice(0, 12), [1, 3, 4]), new Tensor(v.data.slice(0, 12), [1, 3, 4]), { nHead: 1 }));
    assertClose(full.out.data, short.data, 1e-6);
    for (let i = 0; i < 3; i++) {
      assert.equal(full.weights![i * 5 + 3], 0);
      const rowSum = full.weights.subarray(i * 5, i * 5 + 5).reduce((a, b) => a + b, 0);
      assert.ok(Math.abs(rowSum - 1) < 1e-6, `row ${i} sums to ${rowSum}`);
    }
  });

  it('gradients match finite differences (cross shapes, padding, causal)', () => {
    const q = randn([2, 3, 6], rng);
    const k = randn([2, 4, 6], rng);
    const v = randn([2, 4, 6], rng);
    const pad = Uint8Array.from([0, 0, 0, 1, 0, 0, 1, 1]);
    gradCheck(() => attention(q, k, v, { nHead: 2, keyPadding: pad }), [q, k, v]);
    const [a, b, c] = [randn([1, 5, 4], rng), randn([1, 5, 4], rng), randn([1, 5, 4], rng)];
    gradCheck(() => attention(a, b, c, { nHead: 2, causal: true, keyPadding: Uint8Array.from([1, 0, 0, 0, 0]) }), [a, b, c]);
  });
});

describe('positions', () => {
  const rng = new Rng(6);

  it('sinusoidal table: PE(pos, 2i) = sin(pos/10000^(2i/d)), PE(pos, 2i+1) = cos(…)', () => {
    const t = sinusoidalTable(50, 8);
    assert.equal(t[0], 0);
    assert.equal(t[1], 1);
    assert.ok(Math.abs(t[7 * 8 + 2]! - Math.sin(7 / Math.pow(10000, 2 / 8))) < 1e-6);
    assert.ok(Math.abs(t[7 * 8 + 5]! - Math.cos(7 / Math.pow(10000, 4 / 8))) < 1e-6);
  });

  it('rope: gradients match finite differences, and q·k depends only on the offset', () => {
    const x = randn([2, 3, 8], rng);
    gradCheck(() => rope(x, 2), [x]);
    const q = randn([1, 1, 4], rng, 1, false);
    const k = randn([1, 1, 4], rng, 1, false);
    const dot = (pq: number, pk: number): number => {
      const a = rope(q, 1, [pq]).data;
      const b = rope(k, 1, [pk]).data;
      return a.reduce((s, v, i) => s + v * b[i]!, 0);
    };
    assert.ok(Math.abs(dot(3, 1) - dot(10, 8)) < 1e-4);
    assert.ok(Math.abs(dot(3, 1) - dot(3, 2)) > 1e-4);
  });
});

describe('encoder layer', () => {
  it('padding positions do not change the real positions, pre- and post-norm', () => {
    for (const norm of ['pre', 'post'] as const) {
      const rng = new Rng(8);
      const layer = new EncoderLayer({ d_model: 8, n_head: 2, d_ff: 16, dropout: 0, norm, activation: 'relu' }, rng);
      const x = randn([1, 4, 8], rng, 1, false);
      const padded = new Tensor(new Float32Array(6 * 8), [1, 6, 8]);
      padded.data.set(x.data);
      for (let i = 32; i < 48; i++) padded.data[i] = 100 * rng.normal(); // garbage the mask must hide
      const a = noGrad(() => layer.forward(x));
      const b = noGrad(() => layer.forward(padded, Uint8Array.from([0, 0, 0, 0, 1, 1])));
      assertClose(b.data.subarray(0, 32), a.data, 1e-4, norm);
    }
  });

  it('cross-attention with a gradient through the memory', () => {
    const rng = new Rng(9);
    const mha = new MultiHeadAttention({ d_model: 4, n_head: 2, dropout: 0 }, rng);
    const x = randn([1, 2, 4], rng);
    const mem = randn([1, 3, 4], rng);
    gradCheck(() => mha.forward(x, { memory: mem }), [x, mem]);
  });
});

describe('masked attention on the native backend', () => {
  const addon = loadAddon();
  const skip = addon ? false : 'native addon not built: skipped';
  after(() => setBackend('js'));

  it('matches the js backend, forward and gradients', { skip }, () => {
    registerBackend(createNativeBackend(addon!));
    const run = (name: string) => {
      setBackend(name);
      const rng = new Rng(21);
      const [q, k, v] = [randn([3, 5, 12], rng), randn([3, 9, 12], rng), randn([3, 9, 12], rng)];
      const pad = Uint8Array.from({ length: 27 }, (_, i) => (i % 9 > 6 ? 1 : 0));
      const out = attention(q, k, v, { nHead: 3, keyPadding: pad });
      backward(out, Float32Array.from({ length: out.size }, () => rng.normal()));
      return [out.data, q.grad!, k.grad!, v.grad!];
    };
    const js = run('js');
    const native = run('native');
    js.forEach((want, i) => assertClose(native[i]!, want, 1e-5, `tensor ${i}`));
  });
});
