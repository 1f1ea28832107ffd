import { jsBackend } from '../src/backend/js/index.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { AdamW } from '../src/optim/adamw.js';
import { backward } from '../src/tensor/autograd.js';
import { Rng } from '../src/util/rng.js';

const tiny = parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 16, block_size: 8, vocab_size: 11, dropout: 0, bias: true });

describe('GPT model', () => {
  it('has GPT-2 parameter names and the expected count (tied head)', () => {
    const m = new GPT(tiny, new Rng(1));
    const names = m.namedParameters().map(([n]) => n);
    assert.deepEqual(names.slice(0, 4), ['wte.weight', 'wpe.weight', 'h.0.ln_1.weight', 'h.0.ln_1.bias']);
    assert.ok(names.includes('h.1.attn.c_attn.weight') && names.includes('h.1.mlp.c_proj.bias') && names.at(-1) === 'ln_f.bias');
    assert.ok(!names.some((n) => n.includes('lm_head')));
    const C = 16;
    const perBlock = 2 * 2 * C + (3 * C * C + 3 * C) + (C * C + C) + (4 * C * C + 4 * C) + (4 * C * C + C);
    assert.equal(m.numParameters(), 11 * C + 8 * C + 2 * perBlock + 2 * C);
  });

  it('rejects a config whose width does not split into heads', () => {
    assert.throws(() => parseGPTConfig({ ...tiny, n_embd: 15 }), /divisible by n_head/);
  });

  it('gives logits of shape [B, T, V] and a loss near ln(V) at initialisation', () => {
    const m = new GPT(tiny, new Rng(2));
    const ids = Int32Array.from({ length: 16 }, (_, i) => i % 11);
    const { logits, loss } = m.forward(ids, [2, 8], ids);
    assert.deepEqual(logits.shape, [2, 8, 11]);
    assert.ok(Math.abs(loss!.item() - Math.log(11)) < 0.3, `initial loss ${loss!.item()}`);
  });

  it('the last-position logits equal the full forward pass at that position', () => {
    const m = new GPT(tiny, new Rng(3));
    const ids = Int32Array.of(1, 2, 3, 4, 5);
    const full = m.forward(ids, [1, 5]).logits;
    const last = m.nextTokenLogits(ids, [1, 5]);
    assert.deepEqual(Array.from(last.data), Array.from(full.data.subarray(4 * 11)));
  });

  it('learns to continue a repeating sequence (loss falls well below chance)', () => {
    const m = new GPT(tiny, new Rng(4));
    const opt = new AdamW(m.namedParameters(), { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 });
    const seq = Int32Array.from({ length: 9 }, (_, i) => (i * 3) % 11);
    const x = seq.subarray(0, 8);
    const y = seq.subarray(1, 9);
    let loss = Infinity;
    for (let s = 0; s < 60; s++) {
      m.zeroGrad();
      const out = m.forward(x, [1, 8], y);
      loss = out.loss!.item();
      backward(out.loss!);
      opt.update();
    }
    assert.ok(loss < 0.1, `loss after 60 steps: ${loss}`);
  });

  it('dropout is active in train mode and off in eval mode', () => {
    const m = new GPT({ ...tiny, dropout: 0.5 }, new Rng(5));
    const ids = Int32Array.of(1, 2, 3);
    const a = m.forward(ids, [1, 3]).logits.data;
    const b = m.forward(ids, [1, 3]).logits.data;
    assert.notDeepEqual(Array.from(a), Array.from(b));
    m.eval();
    assert.deepEqual(Array.from(m.forward(ids, [1, 3]).logits.data), Array.from(m.forward(ids, [1, 3]).logits.data));
  });

  it('dropout zeroes a fraction p of values, a different set for each seed, and keeps the mean', () => {
    const n = 200_000;
    const x = new Float32Array(n).fill(1);
    for (const p of [0.1, 0.5]) {
      const masks = [1, 2].map((seed) => {
        const out = new Float32Array(n),
          mask = new Float32Array(n);
        jsBackend.dropoutForward(x, out, mask, p, seed);
        return out;
      });
      const dropped = masks[0]!.filter((v) => v === 0).length / n;
      // binomial standard deviation √(p(1−p)/n) ≤ 0.0012: allow five of them
      assert.ok(Math.abs(dropped - p) < 0.006, `p ${p}: dropped ${dropped}`);
      const mean = masks[0]!.reduce((s, v) => s + v, 0) / n;
      assert.ok(Math.abs(mean - 1) < 0.02, `p ${p}: mean ${mean}`);
      const same = masks[0]!.filter((v, i) => (v === 0) === (masks[1]![i] === 0)).length / n;
      assert.ok(same < 1 - p * (1 - p), `p ${p}: seeds 1 and 2 agree on ${same} of the decisions`); // independent: p² + (1−p)²
    }
  });

  it('refuses sequences longer than block_size', () => {
    const m = new GPT(tiny, new Rng(6));
    assert.throws(() => m.forward(new Int32Array(9), [1, 9]), /exceeds block_size/);
  });
});
