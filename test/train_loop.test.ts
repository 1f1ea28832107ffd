import assert from 'node:assert/strict';
import type { Storage } from '../src/backend/storage.js';
import { describe, it } from 'node:test';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Parameter } from '../src/nn/module.js';
import { AdamW } from '../src/optim/adamw.js';
import { backward } from '../src/tensor/autograd.js';
import { mul, sub } from '../src/tensor/ops/elementwise.js';
import { sum } from '../src/tensor/ops/reduce.js';
import { Tensor } from '../src/tensor/tensor.js';
import type { Batch } from '../src/train/data.js';
import { DivergedError, runTraining, type LoopStep } from '../src/train/loop.js';
import { nextTokenObjective } from '../src/train/next_token.js';
import { trainStep, type Objective } from '../src/train/step.js';
import { Rng } from '../src/util/rng.js';

const T = 8;
const tinyGPT = () => new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 16, block_size: T, vocab_size: 20, dropout: 0, bias: false }), new Rng(1));
const adamw = (model: GPT) => new AdamW(model.namedParameters(), { lr: 1e-2, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });

/** `rows` random windows of T tokens and their targets. */
function randomBatch(rows: number, rng: Rng): Batch {
  const x = Int32Array.from({ length: rows * T }, () => rng.int(20));
  const y = Int32Array.from({ length: rows * T }, () => rng.int(20));
  return { x, y };
}
const rowsOf = (b: Batch, from: number, to: number): Batch => ({ x: b.x.slice(from * T, to * T), y: b.y.slice(from * T, to * T) });
// Host backends: the arenas are Float32Arrays.
const maxDiff = (a: Storage, b: Storage) => (a as Float32Array).reduce((m, v, i) => Math.max(m, Math.abs(v - (b as Float32Array)[i]!)), 0);

describe('trainStep', () => {
  it('with gradAccum 2 equals two half-batches averaged by hand, and one batch twice the size', () => {
    const full = randomBatch(4, new Rng(7));
    const halves = [rowsOf(full, 0, 2), rowsOf(full, 2, 4)];
    const lr = 3e-3;

    // The step function, two micro-batches, no clipping (so the gradients it leaves are the mean's).
    const a = tinyGPT();
    const optA = adamw(a);
    const r = trainStep(optA, nextTokenObjective(a, T), halves, { lr, gradClip: 0 });

    // By hand: each half's own gradient in its own backward pass, averaged here, then AdamW.
    const b = tinyGPT();
    const optB = adamw(b);
    const grads: Float32Array[] = [];
    const losses: number[] = [];
    for (const h of halves) {
      optB.zeroGrad();
      const loss = b.forward(h.x, [2, T], h.y).loss!;
      losses.push(loss.item());
      backward(loss);
      grads.push((optB.arena.grad as Float32Array).slice());
    }
    const mean = grads[0]!.map((g, i) => (g + grads[1]![i]!) / 2);
    (optB.arena.grad as Float32Array).set(mean);
    const norm = Math.sqrt(mean.reduce((s, g) => s + g * g, 0));
    optB.update(lr);

    assert.equal(r.loss, (losses[0]! + losses[1]!) / 2);
    assert.ok(Math.abs(r.gradNorm - norm) < 1e-5 * norm, `grad norm ${r.gradNorm} vs ${norm}`);
    assert.ok(maxDiff(optA.arena.grad, mean) < 1e-6, 'accumulated gradient is the mean of the halves');
    assert.ok(maxDiff(optA.arena.data, optB.arena.data) < 1e-6, 'same weights after the update');
    assert.ok(maxDiff(optA.arena.data, adamw(tinyGPT()).arena.data) > 1e-4, 'the step moved the weights');

    // And the same as one micro-batch of all four rows (equal halves: mean of means = mean).
    const c = tinyGPT();
    const optC = adamw(c);
    const rc = trainStep(optC, nextTokenObjective(c, T), [full], { lr, gradClip: 0 });
    assert.ok(Math.abs(rc.loss - r.loss) < 1e-5);
    assert.ok(maxDiff(optC.arena.grad, optA.arena.grad) < 1e-5, 'accumulation = a batch twice the size');
  });

  it('moves the weights only when the loss is finite', () => {
    const model = tinyGPT();
    const opt = adamw(model);
    const before = (opt.arena.data as Float32Array).slice();
    const nan: Objective<Batch> = { loss: (b) => mul(nextTokenObjective(model, T).loss(b), Tensor.from([NaN])) };
    const r = trainStep(opt, nan, [randomBatch(2, new Rng(3))], { lr: 1e-2, gradClip: 1 });
    assert.ok(Number.isNaN(r.loss) && Number.isNaN(r.gradNorm));
    assert.deepEqual(opt.arena.data, before, 'weights untouched');
    assert.equal(opt.step, 0, 'no optimizer step counted');
  });
});

/**
 * A toy objective: fit one 2-vector w to the batch's target, loss Σ(w − t)².
 * The data source hands out target (1, −1) — until `badStep`, where it hands out Infinity.
 */
function toyRun(badStep: number) {
  const w = new Parameter(Float32Array.of(0, 0), [2]);
  const opt = new AdamW([['w', w]], { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 });
  const objective: Objective<Float32Array> = {
    loss: (target) => {
      const d = sub(w, Tensor.from(target, [2]));
      return sum(mul(d, d));
    },
  };
  const saved: Array<{ step: number; w: number[] }> = [];
  const evaluated: number[] = [];
  const steps: LoopStep[] = [];
  const loop = {
    opt,
    objective,
    maxSteps: 10,
    schedule: { lr: 0.1, minLr: 0.1, warmupIters: 0, decayIters: 10 },
    gradClip: 1,
    nextBatches: (step: number) => [step + 1 === badStep ? Float32Array.of(Infinity, 1) : Float32Array.of(1, -1)],
    size: () => 2,
    evalInterval: 3,
    evaluate: (step: number) => {
      evaluated.push(step);
      return [objective.loss(Float32Array.of(1, -1)).item()];
    },
    checkpoint: { dir: '/ckpt', save: (step: number) => saved.push({ step, w: Array.from(w.data) }) },
    onStep: (p: LoopStep) => steps.push(p),
  };
  return { w, opt, loop, saved, evaluated, steps };
}

describe('runTraining', () => {
  it('evaluates and checkpoints at the trainer’s points and at the end, with progress for every step', () => {
    const { loop, saved, evaluated, steps, w } = toyRun(Infinity);
    const r = runTraining(loop);
    assert.deepEqual(evaluated, [3, 6, 9, 10]);
    assert.deepEqual(saved.map((s) => s.step), [3, 6, 9, 10]);
    assert.deepEqual(steps.map((s) => s.step), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.equal(steps[0]!.items, 2);
    assert.equal(steps.at(-1)!.eta, 0);
    assert.equal(r.step, 10);
    assert.equal(r.steps, 10);
    assert.equal(r.items, 20);
    assert.ok(steps[0]!.loss > steps.at(-1)!.loss, 'the toy objective is learned');
    assert.ok(w.data[0]! > 0.5 && w.data[1]! < -0.5);
  });

  it('resuming at step0 takes only the remaining steps; at the end it evaluates once and saves nothing', () => {
    const a = toyRun(Infinity);
    const r = runTraining({ ...a.loop, step0: 7 });
    assert.deepEqual(a.steps.map((s) => s.step), [8, 9, 10]);
    assert.equal(r.steps, 3);
    const b = toyRun(Infinity);
    runTraining({ ...b.loop, step0: 10 });
    assert.deepEqual(b.evaluated, [10]);
    assert.deepEqual(b.saved, [], 'a resumed run with nothing new does not rewrite its checkpoint');
  });

  it('NaN guard: a non-finite loss stops the run with DivergedError and keeps the last good checkpoint', () => {
    const { loop, saved, w, opt } = toyRun(5);
    assert.throws(() => runTraining(loop), (e: unknown) => {
      assert.ok(e instanceof DivergedError);
      assert.match((e as Error).message, /^training diverged: loss is not finite at step 5 \(try a lower --lr\)\. The last good checkpoint is kept in \/ckpt\.$/);
      return true;
    });
    assert.deepEqual(saved.map((s) => s.step), [3], 'nothing saved after the bad step');
    // The bad step did not move the weights: they are those after step 4.
    const ref = toyRun(Infinity);
    runTraining({ ...ref.loop, maxSteps: 4 });
    assert.deepEqual(Array.from(w.data), Array.from(ref.w.data));
    assert.equal(opt.step, 4);
  });

  it('NaN guard: a non-finite evaluation loss stops the run before the checkpoint is written', () => {
    const { loop, saved } = toyRun(Infinity);
    let calls = 0;
    const evaluate = (step: number) => (++calls === 2 ? [NaN] : loop.evaluate(step));
    assert.throws(() => runTraining({ ...loop, evaluate, savedIn: '/resumed' }), /not finite in the evaluation after step 6 .*kept in \/ckpt\./);
    assert.deepEqual(saved.map((s) => s.step), [3]);
    const fresh = toyRun(Infinity);
    assert.throws(() => runTraining({ ...fresh.loop, evaluate: () => [Infinity], savedIn: '/resumed' }), /after step 3 .*kept in \/resumed\./);
  });
});
