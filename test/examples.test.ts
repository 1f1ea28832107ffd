import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { continueText, nextCharProbabilities, trainCharModel } from '../examples/humpty_dumpty.js';
import { fileUrlPath, isMain } from '../examples/is_main.js';
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
    const probs = nextCharProbabilities(cm, 'humpty dumpt');
    assert.ok(Math.abs(probs.reduce((a, c) => a + c.p, 0) - 1) < 1e-5, 'a distribution');
    assert.equal(probs[0]!.char, 'y', 'the likeliest is the greedy choice');
    assert.equal(probs.length, cm.tokenizer.vocabSize);
  });

  it('run as a program, it prints its numbers: "y", then the rhyme\'s first line again and again', () => {
    const script = fileURLToPath(new URL('../examples/humpty_dumpty.js', import.meta.url));
    const out = execFileSync(process.execPath, [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    assert.match(out, /trained a 26656-parameter GPT on 142 characters \(vocabulary of 25\)/);
    const [start, end] = /loss: ([\d.]+) at the start, ([\d.]+) at the end/.exec(out)!.slice(1).map(Number);
    assert.ok(start! > 3 && end! < 0.5, `loss ${start} → ${end}`);
    assert.match(out, /"humpty dumpt" → next character "y" \(likeliest: "y" 0\.9\d\d/);
    assert.match(out, /\nhumpty dumpty sat on a wall,\s*humpty dumpty sat on a wall,/);
  });
});

describe('examples: run only when started as the program', () => {
  it('isMain compares the script with the module, also without getBuiltinModule (Node < 20.16)', () => {
    const url = new URL('../examples/softmax.js', import.meta.url).href;
    const path = fileUrlPath(url);
    assert.equal(path, fileURLToPath(url));
    assert.equal(fileUrlPath('file:///a/b%20c.js'), '/a/b c.js');
    for (const old of [true, false]) {
      const proc = (argv1: string) => (old ? { argv: ['node', argv1] } : { argv: ['node', argv1], getBuiltinModule: (process as unknown as { getBuiltinModule(id: string): unknown }).getBuiltinModule });
      assert.equal(isMain(url, proc(path)), true);
      assert.equal(isMain(url, proc('/elsewhere/softmax.js')), false);
    }
    assert.equal(isMain(url, undefined), false, 'a browser has no process');
    assert.equal(isMain('http://localhost/examples/softmax.js', { argv: ['node', path] }), false);
  });
});
