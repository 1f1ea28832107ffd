import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { AdamW } from '../src/optim/adamw.js';
import { WeightAverage } from '../src/optim/weight_average.js';
import { parseTrainOptions } from '../src/train/options.js';
import { train } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';

before(() => setBackend('js'));

/** A tiny model's parameter arena, and a way to set its weights to chosen values. */
function arena() {
  const model = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 8, block_size: 4, vocab_size: 5 }), new Rng(3));
  const opt = new AdamW(model.namedParameters(), { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 });
  const data = opt.arena.data as Float32Array;
  const fill = (k: number) => data.forEach((_, i) => (data[i] = Math.sin(i * 0.37 + k) * (k + 1)));
  return { data, fill };
}

describe('WeightAverage', () => {
  it('the EMA is the by-hand recurrence, started at the first step', () => {
    const { data, fill } = arena();
    const avg = new WeightAverage({ data } as never, { kind: 'ema', decay: 0.9 });
    const expect = new Float64Array(data.length);
    for (let k = 0; k < 5; k++) {
      fill(k);
      avg.update(k / 5);
      data.forEach((w, i) => (expect[i] = k === 0 ? w : 0.9 * expect[i]! + 0.1 * w));
    }
    const got = avg.values as Float32Array;
    got.forEach((v, i) => assert.ok(Math.abs(v - expect[i]!) < 1e-5, `${i}: ${v} vs ${expect[i]}`));
    assert.equal(avg.count, 5);
  });

  it('the tail mean averages exactly the steps from its share of the run on', () => {
    const { data, fill } = arena();
    const avg = new WeightAverage({ data } as never, { kind: 'tail', from: 0.5 });
    const sum = new Float64Array(data.length);
    for (let k = 0; k < 10; k++) {
      fill(k);
      avg.update(k / 10);
      if (k >= 5) data.forEach((w, i) => (sum[i] = sum[i]! + w));
    }
    assert.equal(avg.count, 5);
    (avg.values as Float32Array).forEach((v, i) => assert.ok(Math.abs(v - sum[i]! / 5) < 1e-5, `${i}: ${v} vs ${sum[i]! / 5}`));
  });

  it('withAveraged shows the average and puts the trained weights back, also after a throw', () => {
    const { data, fill } = arena();
    const avg = new WeightAverage({ data } as never, { kind: 'ema', decay: 0.5 });
    fill(0);
    avg.update(0);
    fill(1);
    avg.update(1);
    const trained = Float32Array.from(data);
    const seen = avg.withAveraged(() => Float32Array.from(data));
    assert.deepEqual(seen, avg.values);
    assert.notDeepEqual(seen, trained);
    assert.deepEqual(data, trained);
    assert.throws(() => avg.withAveraged(() => { throw new Error('boom'); }), /boom/);
    assert.deepEqual(data, trained);
  });
});

describe('attn train with a weight average', () => {
  const dir = mkdtempSync(join(tmpdir(), 'attn-average-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const text = 'to be or not to be, that is the question. '.repeat(40);
  const options = (maxIters: number, extra: object = {}) =>
    parseTrainOptions({ nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16, batchSize: 4, maxIters, evalInterval: 4, evalIters: 2, warmupIters: 1, lrDecayIters: 8, lr: 1e-2, ema: 0.8, ...extra });
  const weights = (d: string, file: string, prefix = '') =>
    new Map([...readSafetensors(join(d, file)).tensors].filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t.data]));

  it('saves the average as the model and the trained weights for resuming, which continues exactly', () => {
    const straight = join(dir, 'straight');
    const summary = train({ text, dataPath: 'inline', options: options(8), out: straight });
    const model = weights(straight, 'model.safetensors');
    const trained = weights(straight, 'optimizer.safetensors', 'training.');
    assert.ok(model.size > 0 && model.size === trained.size);
    assert.ok([...model].some(([k, v]) => v.some((x, i) => x !== trained.get(k)![i])), 'the model file holds the average, not the last weights');
    assert.equal((JSON.parse(readFileSync(join(straight, 'trainer.json'), 'utf8')) as { average: { count: number } }).average.count, 8);
    assert.ok(Number.isFinite(summary.val_loss));

    const resumed = join(dir, 'resumed');
    train({ text, dataPath: 'inline', options: options(4), out: resumed });
    train({ text, dataPath: 'inline', options: options(8), out: resumed, resume: resumed });
    assert.deepEqual(weights(resumed, 'model.safetensors'), model);
    assert.deepEqual(weights(resumed, 'optimizer.safetensors', 'training.'), trained);
  });

  it('the evaluation is of the average: --average-from 0.99 (the last step alone) equals no average', () => {
    const plain = train({ text, dataPath: 'inline', options: options(6, { ema: undefined }) });
    const last = train({ text, dataPath: 'inline', options: options(6, { ema: undefined, averageFrom: 0.99 }) });
    const ema = train({ text, dataPath: 'inline', options: options(6, { ema: 0.5 }) });
    assert.equal(last.val_loss, plain.val_loss);
    assert.notEqual(ema.val_loss, plain.val_loss);
  });

  it('refuses two averages at once', () => {
    assert.throws(() => options(4, { averageFrom: 0.5 }), /choose one weight average/);
  });
});
