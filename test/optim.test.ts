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

  it('clips gradients that live in an arena (joined into one view) exactly like separate arrays', () => {
    const mk = () => [new Parameter(new Float32Array(3), [3]), new Parameter(new Float32Array(4), [2, 2]), new Parameter(new Float32Array(2), [2])];
    const grads = [Float32Array.of(1, -2, 3), Float32Array.of(0.5, 4, -1, 2), Float32Array.of(-3, 1)];
    const loose = mk();
    loose.forEach((p, i) => (p.grad = Float32Array.from(grads[i]!)));
    const packed = mk();
    const opt = new AdamW(packed.map((p, i): [string, Parameter] => [`p${i}`, p]), { lr: 0, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 });
    packed.forEach((p, i) => p.grad!.set(grads[i]!));
    assert.equal(clipGradNorm(packed, 2), clipGradNorm(loose, 2));
    packed.forEach((p, i) => assert.deepEqual(Array.from(p.grad!), Array.from(loose[i]!.grad!)));
    opt.zeroGrad();
    assert.ok(packed.every((p) => p.grad!.every((g) => g === 0)), 'zeroGrad clears the arena');
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
