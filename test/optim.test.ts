import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Parameter } from '../src/nn/module.js';
import { AdamW } from '../src/optim/adamw.js';
import { clipGradNorm } from '../src/optim/clip.js';
import { learningRate } from '../src/optim/schedule.js';

describe('optimizer pieces', () => {
  const o = { lr: 1e-3, minLr: 1e-4, warmupIters: 100, decayIters: 2000 };
  it('warms up linearly, decays by cosine to min_lr, then stays there', () => {
    assert.equal(learningRate(0, o), 1e-3 / 101);
    assert.equal(learningRate(99, o), (1e-3 * 100) / 101);
    assert.equal(learningRate(100, o), 1e-3);
    assert.ok(Math.abs(learningRate(1050, o) - 5.5e-4) < 1e-12); // halfway: the mean of lr and min_lr
    assert.equal(learningRate(2000, o), 1e-4);
    assert.equal(learningRate(5000, o), 1e-4);
  });

  it('clips the global norm across all parameters', () => {
    const a = new Parameter(new Float32Array(2), [2]);
    const b = new Parameter(new Float32Array(1), [1]);
    a.grad = Float32Array.of(3, 0);
    b.grad = Float32Array.of(4);
    assert.equal(clipGradNorm([a, b], 1), 5);
    assert.ok(Math.abs(Math.hypot(a.grad[0]!, b.grad[0]!) - 1) < 1e-5);
    a.grad = Float32Array.of(0.3, 0);
    assert.ok(Math.abs(clipGradNorm([a], 1) - 0.3) < 1e-7);
    assert.ok(Math.abs(a.grad[0]! - 0.3) < 1e-7, 'small gradients are left alone');
  });

  it('AdamW matches a hand computation, with decay on matrices only', () => {
    const w = new Parameter(Float32Array.of(1, -2, 0.5, 3), [2, 2]);
    const b = new Parameter(Float32Array.of(1), [1]);
    w.grad = Float32Array.of(0.1, -0.2, 0.3, 0);
    b.grad = Float32Array.of(0.5);
    const opt = new AdamW([['w', w], ['b', b]], { lr: 0.1, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.5 });
    opt.update();
    // Step 1: m̂ = g, v̂ = g², so the update is lr·g/(|g|+eps) = ±lr (0 where g = 0).
    const want = [1 * (1 - 0.05) - 0.1, -2 * (1 - 0.05) + 0.1, 0.5 * (1 - 0.05) - 0.1, 3 * (1 - 0.05)];
    want.forEach((v, i) => assert.ok(Math.abs(w.data[i]! - v) < 1e-6, `w[${i}] ${w.data[i]} vs ${v}`));
    assert.ok(Math.abs(b.data[0]! - 0.9) < 1e-6, 'no decay on 1-D tensors');
  });
});
