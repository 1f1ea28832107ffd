import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { continueText, trainCharModel } from '../examples/humpty_dumpty.js';
import { forwardTrace, neuron } from '../examples/leaf_flower_forward.js';
import { ARTICLE_WEIGHTS, LEAF } from '../examples/leaf_flower_net.js';
import {
  absLoss, accuracy, autogradGradients, dataset, GRAD_TOLERANCE, maxDifference, nudgeGradients, trainLeafFlower,
} from '../examples/leaf_flower_training.js';
import { LeafFlowerNet } from '../examples/leaf_flower_net.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';

// The examples compute in float32, like the rest of the library: 1e-4 is well above its rounding here.
const close = (got: number, want: number, atol = 1e-4): void => assert.ok(Math.abs(got - want) <= atol, `${got} vs ${want}`);

describe('examples: the article\'s leaf/flower network', () => {
  it('first middle neuron: −26.598, and −26.348 with a bias of 0.25', () => {
    const w = ARTICLE_WEIGHTS.middle[0]!;
    close(neuron(LEAF, w), -26.598);
    close(neuron(LEAF, w, 0.25), -26.348);
  });

  it('ReLU zeroes the negative middle neurons, and the larger output reads "leaf"', () => {
    const t = forwardTrace(LEAF);
    close(t.middleSums[0]!, -26.348);
    t.middleSums.forEach((s, i) => assert.equal(t.middle[i], Math.max(0, s)));
    assert.equal(t.middle[0], 0);
    assert.ok(t.outputs[0]! > t.outputs[1]!);
    assert.equal(t.verdict, 'leaf');
    assert.equal(forwardTrace([255, 200, 0, 60]).verdict, 'flower');
  });

  it('the loss of (0.6, 0.4) against (0.8, 0.2) is 0.4', () => {
    close(absLoss(Tensor.from([0.6, 0.4]), Tensor.from([0.8, 0.2])).item(), 0.4, 1e-6);
  });

  it(`gradients by nudging each weight agree with autograd (within ${GRAD_TOLERANCE})`, () => {
    const { x, targets } = dataset();
    for (const seed of [3, 4, 5]) {
      const net = new LeafFlowerNet(new Rng(seed));
      const diff = maxDifference(autogradGradients(net, x, targets), nudgeGradients(net, x, targets));
      assert.ok(diff <= GRAD_TOLERANCE, `seed ${seed}: max difference ${diff}`);
    }
  });

  it('gradient descent learns leaf vs flower either way, the two gradients agreeing away from corners', () => {
    for (const method of ['nudge', 'autograd'] as const) {
      const r = trainLeafFlower(method, { steps: 100 });
      assert.ok(r.losses[r.losses.length - 1]! < r.losses[0]! / 2, `${method}: loss ${r.losses[0]} → ${r.losses[r.losses.length - 1]}`);
      assert.equal(accuracy(r.net), 1);
      // Entries that differ are weights within one nudge of a corner of |·| or ReLU.
      assert.ok(r.agreeing / r.compared > 0.95, `${method}: ${r.agreeing} of ${r.compared} agree`);
    }
  });
});

describe('examples: the character model', () => {
  it('continues "humpty dumpt" with "y" (seeded, 12-character window)', () => {
    const cm = trainCharModel({ steps: 150 });
    assert.equal(continueText(cm, 'humpty dumpt', 1), 'y');
    assert.equal(cm.model.config.block_size, 12);
  });
});
