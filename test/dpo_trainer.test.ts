import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { ChatTemplate } from '../src/chat/template.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { modelFiles } from '../src/io/model_dir.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { backward } from '../src/tensor/autograd.js';
import { Tensor } from '../src/tensor/tensor.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { chosenNll, implicitRewardLoss, responseBatch } from '../src/train/dpo_trainer.js';
import { encodePreference } from '../src/train/sft_data.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, assertUserError, runAttn } from './helpers.js';

const tmp = mkdtempSync(join(tmpdir(), 'attn-dpo-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const chatml = new ChatTemplate(undefined, {});
const ALPHABET = 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,?!+-=|<>_\n';

describe('DPO trainer parts', () => {
  it('the loss moves the policy from the very first step (policy = reference: margins 0)', () => {
    const pc = new Tensor(Float32Array.of(-5, -7), [2], true);
    const pr = new Tensor(Float32Array.of(-6, -2), [2], true);
    const loss = implicitRewardLoss(pc, pr, Tensor.from([-5, -7]), Tensor.from([-6, -2]), 0.1);
    assertClose([loss.item()], [Math.log(2)], 1e-6);
    backward(loss);
    // d/d log π(c) of −log σ(β·Δ) at Δ = 0 is −β/2, averaged over 2 pairs.
    assertClose(Array.from(pc.grad!), [-0.025, -0.025], 1e-7);
    assertClose(Array.from(pr.grad!), [0.025, 0.025], 1e-7);
  });

  it('the NLL term (RPO) is the chosen replies\' mean per-token negative log-likelihood', () => {
    const tok = CharTokenizer.fromText(ALPHABET);
    const pairs = [
      encodePreference(chatml, tok, { row: 1, prompt: 'Hi', chosen: 'yes', rejected: 'no' }),
      encodePreference(chatml, tok, { row: 2, prompt: 'Hi', chosen: 'a longer one', rejected: 'no' }),
    ];
    const n = pairs.map((p) => p.chosen.mask.reduce((s, m) => s + m, 0));
    assert.deepEqual(n, [3 + 11, 12 + 11]); // the reply and "<|im_end|>\n"
    const lp = new Tensor(Float32Array.of(-7, -46), [2], true);
    const nll = chosenNll(lp, pairs);
    assertClose([nll.item()], [(7 / n[0]! + 46 / n[1]!) / 2], 1e-6);
    backward(nll);
    assertClose(Array.from(lp.grad!), [-1 / n[0]! / 2, -1 / n[1]! / 2], 1e-7);
  });

  it('lays out [chosen…, rejected…] with a mask on the reply tokens only', () => {
    const tok = CharTokenizer.fromText(ALPHABET);
    const p = encodePreference(chatml, tok, { row: 1, prompt: 'Hi', chosen: 'yes', rejected: 'no way' });
    const b = responseBatch([p]);
    const [B, T] = b.shape;
    assert.deepEqual([B, T], [2, Math.max(p.chosen.ids.length, p.rejected.ids.length)]);
    const reply = (row: number) => tok.decode(Array.from(b.ids.subarray(row * T, (row + 1) * T)).filter((_, t) => b.responseMask[row * T + t]));
    assert.equal(reply(0), 'yes<|im_end|>\n');
    assert.equal(reply(1), 'no way<|im_end|>\n');
  });
});

describe('attn dpo (CLI)', () => {
  const tok = CharTokenizer.fromText(ALPHABET);
  const base = join(tmp, 'base');
  writeDirAtomic(base, modelFiles(new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 16, block_size: 96, vocab_size: tok.vocabSize }), new Rng(1)), tok));
  const prefs = join(tmp, 'prefs.jsonl');
  const rows = Array.from({ length: 10 }, (_, i) => JSON.stringify({ prompt: `Say ${i}`, chosen: `ok ${i}`, rejected: `no ${i}!` }));
  writeFileSync(prefs, rows.join('\n') + '\n');
  // A flat learning rate: a run cut short at 10 steps and resumed to 20 follows the schedule of one run to 20.
  const common = ['--data', prefs, '--batch-size', '4', '--lr', '3e-3', '--min-lr', '3e-3', '--warmup-iters', '0', '--log-interval', '5', '--val-fraction', '0.2'];

  it('raises the preference accuracy and margin on the training pairs, resumes exactly, and dpo eval reports them', () => {
    const r = runAttn(['dpo', '--init', base, '--out', join(tmp, 'dpo'), '--max-iters', '20', '--eval-interval', '10', ...common], tmp);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /preference accuracy \d+%, reward margin/);
    const all = runAttn(['dpo', 'eval', '--model', join(tmp, 'dpo'), '--data', prefs, '--all'], tmp);
    assert.equal(all.code, 0, all.stderr);
    const e = JSON.parse(all.stdout);
    assert.equal(e.rows, 10);
    assert.ok(e.preference_accuracy >= 0.8, `accuracy ${e.preference_accuracy}`);
    assert.ok(e.reward_margin > 0 && e.chosen_reward > e.rejected_reward);

    const half = runAttn(['dpo', '--init', base, '--out', join(tmp, 'half'), '--max-iters', '10', '--eval-interval', '10', ...common], tmp);
    assert.equal(half.code, 0, half.stderr);
    const rest = runAttn(['dpo', '--resume', join(tmp, 'half'), '--max-iters', '20', '--eval-interval', '10', ...common], tmp);
    assert.equal(rest.code, 0, rest.stderr);
    const a = readSafetensors(join(tmp, 'dpo', 'model.safetensors')).tensors;
    const b = readSafetensors(join(tmp, 'half', 'model.safetensors')).tensors;
    for (const [name, t] of a) assertClose(b.get(name)!.data as Float32Array, t.data as Float32Array, 0, name);
    assert.equal(JSON.parse(readFileSync(join(tmp, 'dpo', 'dpo.json'), 'utf8')).heldOut.length, 2);
  });

  it('bad input: same chosen and rejected (row number), --beta ≤ 0, a LoRA target that names no layer', () => {
    const same = join(tmp, 'same.jsonl');
    writeFileSync(same, '{"prompt":"a","chosen":"x","rejected":"y"}\n\n{"prompt":"b","chosen":"z","rejected":"z"}\n');
    assertUserError(runAttn(['dpo', '--init', base, '--data', same, '--out', join(tmp, 'x')], tmp), /row 3: "chosen" and "rejected" are the same answer/);
    assertUserError(runAttn(['dpo', '--init', base, '--data', prefs, '--out', join(tmp, 'x'), '--beta', '0'], tmp), /--beta must be a positive number/);
    assertUserError(runAttn(['dpo', '--init', base, '--data', prefs, '--out', join(tmp, 'x'), '--nll-weight', '-1'], tmp), /--nll-weight must be ≥ 0/);
    assertUserError(runAttn(['dpo', '--init', base, '--data', prefs, '--out', join(tmp, 'x'), '--lora-r', '2', '--lora-targets', 'nope'], tmp), /LoRA target "nope" names no linear layer/);
  });
});
