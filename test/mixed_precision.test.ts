import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { loadModel } from '../src/io/model_dir.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { AdamW } from '../src/optim/adamw.js';
import { withPrecision, type Precision } from '../src/tensor/precision.js';
import { TokenDataset } from '../src/train/data.js';
import { validationLoss } from '../src/train/evaluate.js';
import { nextTokenObjective } from '../src/train/next_token.js';
import { parseTrainOptions } from '../src/train/options.js';
import { trainStep } from '../src/train/step.js';
import { train } from '../src/train/trainer.js';
import { Rng } from '../src/util/rng.js';
import { assertUserError, hasShared, REFERENCE_DIR, referenceSkip } from './helpers.js';

const addon = loadAddon();
if (addon) registerBackend(createNativeBackend(addon));
after(() => setBackend('js'));
const CLI = resolve(process.cwd(), 'dist/src/cli/main.js');

/** 15 AdamW steps of the reference model on fixed random tokens; the first step's loss and gradients, and the losses. */
function trainReference(precision: Precision) {
  const { model } = loadModel(REFERENCE_DIR);
  const cfg = model.config;
  const rng = new Rng(3);
  const [B, T] = [4, cfg.block_size];
  const x = Int32Array.from({ length: B * T }, () => rng.int(cfg.vocab_size));
  const y = Int32Array.from({ length: B * T }, () => rng.int(cfg.vocab_size));
  const opt = new AdamW(model.namedParameters(), { lr: 3e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  const objective = nextTokenObjective(model, T);
  const losses: number[] = [];
  let grads: Float32Array[] = [];
  for (let step = 0; step < 15; step++) {
    losses.push(withPrecision(precision, () => trainStep(opt, objective, [{ x, y }], { lr: 3e-3, gradClip: 0 })).loss);
    if (step === 0) grads = model.namedParameters().map(([, p]) => p.grad!.slice());
  }
  return { losses, grads, weights: model.namedParameters().map(([, p]) => p.data) };
}

const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));

describe('bf16 mixed-precision training stays close to FP32 on the reference model (gpt2-tiny)', { skip: referenceSkip(hasShared(REFERENCE_DIR) ? false : `${REFERENCE_DIR} absent`) }, () => {
  for (const be of addon ? ['js', 'native'] : ['js']) {
    it(`${be}: first loss within 0.5 %, each gradient within 3 % (relative L2), the loss after 15 steps within 2 %, weights stay FP32`, () => {
      setBackend(be);
      const fp32 = trainReference('fp32');
      const bf16 = trainReference('bf16');
      // bf16 keeps 8 significant bits (relative rounding ≤ 2⁻⁹ ≈ 0.2 % per operand): the
      // bounds are a few times that, and far below what a wrong kernel or a bf16 master copy gives.
      assert.ok(Math.abs(bf16.losses[0]! - fp32.losses[0]!) / fp32.losses[0]! < 5e-3, `first loss ${bf16.losses[0]} vs ${fp32.losses[0]}`);
      assert.notEqual(bf16.losses[0], fp32.losses[0], 'bf16 should round something');
      fp32.grads.forEach((g, i) => {
        const diff = norm(g.map((v, j) => v - bf16.grads[i]![j]!));
        assert.ok(diff <= 0.03 * norm(g) + 1e-7, `gradient ${i}: relative error ${diff / norm(g)}`);
      });
      const [a, b] = [fp32.losses.at(-1)!, bf16.losses.at(-1)!];
      assert.ok(a < fp32.losses[0]! * 0.9, `fp32 training should learn (${fp32.losses[0]} → ${a})`);
      assert.ok(Math.abs(a - b) / a < 0.02, `loss after 15 steps: bf16 ${b} vs fp32 ${a}`);
      // Master weights are FP32: some weight is not a bf16 value.
      assert.ok(bf16.weights.some((w) => w.some((v) => (new Uint32Array(Float32Array.of(v).buffer)[0]! & 0xffff) !== 0)));
    });
  }
});

describe('whole-split validation and the time limit', () => {
  const text = 'the quick brown fox jumps over the lazy dog. '.repeat(60);
  const ids = Int32Array.from(text, (c) => c.charCodeAt(0) % 29);
  const model = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 8, block_size: 16, vocab_size: 29 }), new Rng(1));

  it('validationLoss predicts every validation token once, whatever the batch size', () => {
    setBackend('js');
    const data = new TokenDataset(ids, 16);
    const one = validationLoss(model, data, 1);
    assert.ok(Math.abs(validationLoss(model, data, 5) - one) < 1e-5);
    // Against a direct sum over the windows (the last one shorter).
    let sum = 0;
    const val = data.val;
    for (let at = 0; at < val.length - 1; at += 16) {
      const t = Math.min(16, val.length - 1 - at);
      sum += model.forward(val.slice(at, at + t), [1, t], val.slice(at + 1, at + 1 + t)).loss!.item() * t;
    }
    assert.ok(Math.abs(one - sum / (val.length - 1)) < 1e-5);
  });

  it('a time-limited run stops on time, its schedule decayed, and evaluates on the whole split', () => {
    setBackend('js');
    // The trainer keeps 3 s for saving (trainer.ts timeLimited): 6 s leaves about 3 s of steps.
    const limit = performance.now() / 1000 + 6;
    const options = parseTrainOptions({ nLayer: 1, nHead: 2, nEmbd: 16, blockSize: 16, batchSize: 4, maxIters: 1_000_000, evalInterval: 1_000_000, timeLimit: limit, fullValidation: true, warmupIters: 2 });
    const lrs: number[] = [];
    const summary = train({ text, dataPath: 'inline', options }, { onStep: (s) => lrs.push(s.lr) });
    assert.ok(performance.now() / 1000 <= limit + 0.5, 'finished by the deadline');
    assert.ok(summary.step > 5 && summary.step < 1_000_000, `stopped by the clock after ${summary.step} steps`);
    assert.ok(Number.isFinite(summary.val_loss));
    assert.ok(lrs.at(-1)! < options.lr * 0.2, `the clock drives the decay: last lr ${lrs.at(-1)}`);
  });
});

describe('attn train --precision bf16 and --preset (CLI)', () => {
  // One folder down, so that the preset's default ../shared/data path never exists, wherever the temp folder is.
  const root = mkdtempSync(join(tmpdir(), 'attn-mixed-'));
  const dir = join(root, 'cwd');
  mkdirSync(dir);
  after(() => rmSync(root, { recursive: true, force: true }));
  const attn = (args: string[], env: Record<string, string> = {}) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', cwd: dir, env: { ...process.env, ...env } });
  const tiny = ['train', '--builtin', '--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--block-size', '16', '--batch-size', '2', '--max-iters', '3', '--eval-iters', '1', '--precision', 'bf16'];

  it('on a CPU without AVX-512 BF16 (forced by ATTN_ISA) it runs and says so once', { skip: addon ? false : 'native addon not built' }, () => {
    const r = attn([...tiny, '--out', join(dir, 'a')], { ATTN_ISA: 'avx512' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.split('\n').filter((line) => /bf16/.test(line)).length, 1, r.stderr);
    assert.match(r.stderr, /AVX-512 BF16/);
    const summary = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { step: number; val_loss: number };
    assert.equal(summary.step, 3);
    assert.ok(Number.isFinite(summary.val_loss));
  });

  it('with vdpbf16ps it says nothing about bf16', { skip: addon?.cpuHasBf16() ? false : 'this CPU has no AVX-512 BF16' }, () => {
    const r = attn([...tiny, '--out', join(dir, 'b')], { ATTN_ISA: 'avx512bf16' });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /bf16/);
  });

  it('--preset speedrun-5min names the missing tinyshakespeare file and --data', () => {
    const r = attn(['train', '--preset', 'speedrun-5min', '--out', join(dir, 'c')]);
    assertUserError({ code: r.status ?? -1, stderr: r.stderr }, /tinyshakespeare.*--data FILE/);
  });
});
