import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { AdamW } from '../src/optim/adamw.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { crossEntropy } from '../src/tensor/ops/cross_entropy.js';
import { distillationLoss } from '../src/tensor/ops/distillation.js';
import { softmax } from '../src/tensor/ops/softmax.js';
import { Tensor } from '../src/tensor/tensor.js';
import { distillationObjective } from '../src/train/distill.js';
import { trainStep } from '../src/train/step.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

const tiny = (seed: number, layers: number, vocab = 24) =>
  new GPT(parseGPTConfig({ n_layer: layers, n_head: 2, n_embd: 32, block_size: 16, vocab_size: vocab, bias: true }), new Rng(seed));

/** Rows of probabilities from random scores. */
function randomDistributions(rows: number, V: number, rng: Rng): Float32Array {
  const z = Tensor.from(Array.from({ length: rows * V }, () => 2 * rng.normal()), [rows, V]);
  return Float32Array.from(softmax(z).data);
}

describe('distillationLoss', () => {
  it('is KL(p ‖ q): zero when the student already matches, cross-entropy when p is one-hot', () => {
    const rng = new Rng(1);
    const z = Tensor.from(Array.from({ length: 3 * 7 }, () => rng.normal()), [3, 7]);
    const same = distillationLoss(z, Float32Array.from(softmax(z).data));
    assert.ok(Math.abs(same.data[0]!) < 1e-6, `KL(q ‖ q) = ${same.data[0]}`);
    const targets = Int32Array.of(2, 0, 6);
    const oneHot = new Float32Array(21);
    targets.forEach((t, r) => (oneHot[r * 7 + t] = 1));
    const kl = distillationLoss(z, oneHot).data[0]!;
    const ce = crossEntropy(z, targets).data[0]!;
    assert.ok(Math.abs(kl - ce) < 1e-5, `KL ${kl} vs cross-entropy ${ce}`);
  });

  it('has the gradient of a finite difference', () => {
    const rng = new Rng(2);
    const [rows, V] = [4, 5];
    const p = randomDistributions(rows, V, rng);
    const values = Array.from({ length: rows * V }, () => rng.normal());
    const z = Tensor.from(values, [rows, V]);
    z.requiresGrad = true;
    backward(distillationLoss(z, p));
    const at = (v: number[]) => noGrad(() => distillationLoss(Tensor.from(v, [rows, V]), p).data[0]!);
    const h = 1e-2;
    for (let i = 0; i < rows * V; i++) {
      const up = values.slice();
      const down = values.slice();
      up[i]! += h;
      down[i]! -= h;
      const numeric = (at(up) - at(down)) / (2 * h);
      assert.ok(Math.abs(numeric - z.grad![i]!) < 2e-3, `element ${i}: numeric ${numeric}, analytic ${z.grad![i]}`);
    }
  });
});

describe('distillationObjective', () => {
  it('brings a 1-layer student\'s distributions toward a 2-layer teacher\'s (KL falls, argmax agreement rises)', () => {
    const teacher = tiny(3, 2);
    for (const p of teacher.parameters()) for (let i = 0; i < p.size; i++) p.data[i]! *= 4; // confident, distinct from the student's start
    const student = tiny(7, 1);
    const objective = distillationObjective(student, teacher, 16);
    const rng = new Rng(5);
    const batch = () => {
      const x = Int32Array.from({ length: 4 * 16 }, () => rng.int(24));
      return { x, y: x };
    };
    const held = batch();
    const measure = () => noGrad(() => {
      const kl = objective.loss(held).data[0]!;
      const t = teacher.forward(held.x, [4, 16]).logits.data;
      const s = student.forward(held.x, [4, 16]).logits.data;
      let agree = 0;
      for (let r = 0; r < 64; r++) if (argmax(t.subarray(r * 24, (r + 1) * 24)) === argmax(s.subarray(r * 24, (r + 1) * 24))) agree++;
      return { kl, agree: agree / 64 };
    });
    const before = measure();
    const opt = new AdamW(student.namedParameters(), { lr: 3e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 });
    student.train();
    for (let step = 0; step < 60; step++) trainStep(opt, objective, [batch()], { lr: 3e-3, gradClip: 1 });
    student.eval();
    const after = measure();
    assert.ok(after.kl < 0.6 * before.kl, `KL ${before.kl} → ${after.kl}`);
    assert.ok(after.agree > before.agree, `argmax agreement ${before.agree} → ${after.agree}`);
    assert.ok(teacher.parameters().every((p) => p.grad === null || p.grad.every((g) => g === 0)), 'the teacher is not trained');
  });

  it('refuses a teacher of another vocabulary', () => {
    assert.throws(() => distillationObjective(tiny(1, 1, 24), tiny(2, 2, 30), 16), (e: unknown) => e instanceof UserError && /24 tokens but the teacher 30/.test(e.message));
  });
});

function argmax(a: Float32Array): number {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i]! > a[best]!) best = i;
  return best;
}
