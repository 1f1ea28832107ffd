import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { preferencePairs, preferenceRows } from '../src/data/preferences.js';
import { parsePreferenceRow } from '../src/data/preferences_file.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { modelFiles } from '../src/io/model_dir.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { Tensor } from '../src/tensor/tensor.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { RewardModel } from '../src/train/reward_model.js';
import { bradleyTerryLoss } from '../src/train/reward_trainer.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, assertUserError, runAttn } from './helpers.js';

const tinyGPT = (vocab = 12) => new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 8, block_size: 16, vocab_size: vocab }), new Rng(4));
const tmp = mkdtempSync(join(tmpdir(), 'attn-reward-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

describe('reward model', () => {
  it('scores a sequence by its last real token: the same alone and right-padded beside a longer one', () => {
    const rm = new RewardModel(tinyGPT()).eval();
    const a = Int32Array.of(1, 2, 3);
    const b = Int32Array.of(4, 5, 6, 7, 8, 9);
    const both = noGrad(() => rm.scores([a, b]).data);
    assertClose([both[0]!], [noGrad(() => rm.scores([a]).data[0]!)], 1e-6);
    assertClose([both[1]!], [noGrad(() => rm.scores([b]).data[0]!)], 1e-6);
    // Changing a token after the last real one (padding) cannot change the score; changing the last one does.
    const c = noGrad(() => rm.scores([Int32Array.of(1, 2, 4)]).data[0]!);
    assert.notEqual(c, both[0]);
  });

  it('gradients reach the head and the body through the picked positions only', () => {
    const body = tinyGPT();
    const rm = new RewardModel(body);
    const loss = bradleyTerryLoss(rm.scores([Int32Array.of(1, 2)]), rm.scores([Int32Array.of(3, 4, 5)]));
    backward(loss);
    assert.ok(rm.score.weight.grad!.some((g) => g !== 0));
    assert.ok(body.wte.weight.grad!.some((g) => g !== 0));
    // Token 6 appears in no sequence: its embedding row gets no gradient except through the tied head, which the reward model does not use.
    assert.ok(body.wte.weight.grad!.subarray(6 * 8, 7 * 8).every((g) => g === 0));
  });

  it('Bradley–Terry: −log σ(r_c − r_r), with the exact gradient also at r_c = r_r', () => {
    const c = new Tensor(Float32Array.of(0, 2, -1), [3], true);
    const r = new Tensor(Float32Array.of(0, 1, 30), [3], true);
    const loss = bradleyTerryLoss(c, r);
    const want = [0, 1, -31].map((z) => Math.log(1 + Math.exp(-z))).reduce((s, v) => s + v, 0) / 3;
    assertClose([loss.item()], [want], 1e-5);
    backward(loss);
    // d/dr_c of −log σ(z) is −σ(−z), over 3 pairs: at z = 0 that is −0.5 / 3, not 0.
    assertClose(Array.from(c.grad!), [0, 1, -31].map((z) => -1 / (1 + Math.exp(z)) / 3), 1e-6);
    assertClose(Array.from(r.grad!), Array.from(c.grad!, (g) => -g), 1e-6);
  });

  it('a preference row whose chosen and rejected are the same is one line with the row number', () => {
    assert.throws(() => parsePreferenceRow({ prompt: 'p', chosen: 'x', rejected: 'x' }, 3, 'prefs.jsonl'), (e: Error) => e instanceof UserError && /row 3: "chosen" and "rejected" are the same answer/.test(e.message));
    assert.throws(() => parsePreferenceRow({ prompt: 'p', chosen: 'x' }, 5, 'prefs.jsonl'), /row 5 needs a "rejected" string/);
  });
});

describe('attn reward (CLI)', () => {
  const prefs = join(tmp, 'prefs.jsonl');
  writeFileSync(prefs, preferenceRows(preferencePairs(24, 3).filter((p) => p.prompt.length < 40)));
  const base = join(tmp, 'base');
  const text = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,?!+-=|<>_\n';
  const tok = CharTokenizer.fromText(text);
  writeDirAtomic(base, modelFiles(new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 16, block_size: 192, vocab_size: tok.vocabSize }), new Rng(1)), tok));

  it('trains, prints held-out accuracy, saves, and scores', () => {
    const out = join(tmp, 'rm');
    const r = runAttn(['reward', 'train', '--init', base, '--data', prefs, '--out', out, '--max-iters', '3', '--batch-size', '4', '--eval-interval', '3'], tmp);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /held-out loss [\d.]+, accuracy [\d.]+%/);
    const summary = JSON.parse(r.stdout.trim());
    assert.ok(summary.val_accuracy >= 0 && summary.val_accuracy <= 1);
    const one = runAttn(['reward', 'score', '--model', out, '--prompt', 'Hi', '--response', 'Hello'], tmp);
    assert.equal(one.code, 0, one.stderr);
    assert.ok(Number.isFinite(JSON.parse(one.stdout).score));
    const all = runAttn(['reward', 'score', '--model', out, '--data', prefs], tmp);
    assert.equal(all.code, 0, all.stderr);
    const lines = all.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.at(-1).rows, lines.length - 1);
    assert.equal(lines.at(-1).accuracy, lines.slice(0, -1).filter((l) => l.chosen > l.rejected).length / (lines.length - 1));
  });

  it('bad input: chosen equal to rejected names the row; a directory without a head is not a reward model', () => {
    const same = join(tmp, 'same.jsonl');
    writeFileSync(same, '{"prompt":"a","chosen":"x","rejected":"y"}\n{"prompt":"b","chosen":"z","rejected":"z"}\n');
    assertUserError(runAttn(['reward', 'train', '--init', base, '--data', same, '--out', join(tmp, 'x')], tmp), /row 2: "chosen" and "rejected" are the same answer/);
    assertUserError(runAttn(['reward', 'score', '--model', base, '--prompt', 'a', '--response', 'b'], tmp), /no reward_head.safetensors: not a reward model/);
  });
});
