import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { runEmbedTrainAsync } from '../src/cli/embed.js';
import { dpoCommand, runDpoAsync } from '../src/cli/dpo.js';
import { rewardCommand, runRewardTrainAsync } from '../src/cli/reward.js';
import { runSeq2SeqTrain } from '../src/cli/seq2seq.js';
import { runSftAsync, runSftEval } from '../src/cli/sft.js';
import { instructionRows, instructions } from '../src/data/instructions.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { parseFineTuneOptions } from '../src/train/sft_options.js';
import { chatTokenizerFiles, tinyLlama, writeHFLlamaDir } from './llama_fixture.js';
import { webgpuSkip } from './webgpu_helpers.js';

/*
 * The CLI trainers beyond `attn train` and `attn vit train` on webgpu
 * against js: `attn embed train`, `attn seq2seq train` and `attn sft` (a
 * tiny grouped-query Llama with LoRA adapters) with --backend webgpu, run in-process (one device, its pipelines compiled once for the
 * file), their progress lines captured. Each step's loss must equal js's
 * within rtol 1e-3 (the printed 4 decimals; the models are small and the
 * kernels differ from js only in summation order). SwiftShader without a
 * GPU; skips as webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('webgpu CLI trainer tests');
const work = mkdtempSync(join(tmpdir(), 'attn-webgpu-trainers-'));
after(() => {
  setBackend('js');
  rmSync(work, { recursive: true, force: true });
});

/** Run `f` with stderr captured; its progress lines' "step N/M … loss X" as [N, X] pairs, and all the text. */
async function progressOf(f: () => Promise<unknown>): Promise<{ losses: Array<[number, number]>; text: string }> {
  let text = '';
  const write = process.stderr.write;
  process.stderr.write = ((chunk: string | Uint8Array) => ((text += String(chunk)), true)) as typeof process.stderr.write;
  try {
    await f();
  } finally {
    process.stderr.write = write;
    setBackend('js');
  }
  const losses = [...text.matchAll(/^step (\d+)\/\d+ .* loss ([\d.]+) /gm)].map((m) => [Number(m[1]), Number(m[2])] as [number, number]);
  return { losses, text };
}

function sameLosses(got: Array<[number, number]>, want: Array<[number, number]>, steps: number, what: string): void {
  assert.equal(want.length, steps, `${what}: js printed ${want.length} step lines`);
  assert.deepEqual(got.map(([s]) => s), want.map(([s]) => s), `${what}: the same steps`);
  got.forEach(([s, l], i) => {
    const w = want[i]![1];
    assert.ok(Math.abs(l - w) <= 1e-3 * Math.abs(w) + 1e-4, `${what}: step ${s} loss ${l} on webgpu, ${w} on js (rtol 1e-3)`);
  });
  assert.ok(new Set(want.map(([, l]) => l)).size > 1, `${what}: the loss moves (a test that can tell)`);
}

describe('CLI trainers on webgpu: each step\'s loss as js', { skip }, () => {
  for (const labelSmoothing of [0, 0.1]) {
    it(`attn seq2seq train --label-smoothing ${labelSmoothing}${labelSmoothing ? ' (the default: the fused cross-entropy smooths the target on the device)' : ''}`, async () => {
      const flags = { task: 'numbers-de', steps: 3, batchSize: 6, layers: 1, dModel: 16, heads: 2, dFf: 32, warmup: 0, evalInterval: 3, evalSize: 2, logInterval: 1, labelSmoothing };
      const js = await progressOf(() => runSeq2SeqTrain({ ...flags, out: join(work, `s2s-js-${labelSmoothing}`), backend: 'js' }));
      const gpu = await progressOf(() => runSeq2SeqTrain({ ...flags, out: join(work, `s2s-gpu-${labelSmoothing}`), backend: 'webgpu' }));
      assert.match(gpu.text, /backend webgpu/);
      sameLosses(gpu.losses, js.losses, 3, `seq2seq, label smoothing ${labelSmoothing}`);
      assert.match(gpu.text, /saved checkpoint at step 3/);
    });
  }

  it('attn embed train', async () => {
    const flags = { task: 'templates', pairs: 300, dataSeed: 1, passageWords: 64, windowWords: 24, steps: 3, dModel: 16, heads: 2, layers: 1, batchSize: 8, evalInterval: 3, evalPairs: 8, logInterval: 1, warmupSteps: 0 };
    const js = await progressOf(() => runEmbedTrainAsync({ ...flags, out: join(work, 'emb-js'), backend: 'js' }, () => {}));
    const gpu = await progressOf(() => runEmbedTrainAsync({ ...flags, out: join(work, 'emb-gpu'), backend: 'webgpu' }, () => {}));
    assert.match(gpu.text, /backend webgpu/);
    sameLosses(gpu.losses, js.losses, 3, 'embed');
    assert.match(gpu.text, /saved .*emb-gpu at step 3/);
  });
});

describe('attn sft, attn reward train and attn dpo on webgpu', { skip }, () => {
  const data = join(work, 'sft.jsonl');
  const base = join(work, 'llama');

  it('attn sft --lora-r 2 on a tiny Llama: each step\'s loss as js, the base unchanged, the adapter and the moments saved', async () => {
    writeFileSync(data, instructionRows(instructions(24, 5)));
    const model = tinyLlama({ n_layer: 1, n_head: 4, n_kv_head: 2, n_embd: 32, head_dim: 8, intermediate_size: 48, block_size: 256, tie_word_embeddings: false }, 7);
    writeHFLlamaDir(base, model, chatTokenizerFiles());
    const options = parseFineTuneOptions({ maxIters: 3, batchSize: 4, lr: 1e-2, minLr: 1e-2, warmupIters: 1, evalInterval: 3, logInterval: 1 });
    const lora = { r: 2, alpha: 4, dropout: 0 };
    const run = (backend: string) => progressOf(() => runSftAsync({ init: base, data, out: join(work, `sft-${backend}`), backend, lora }, options));
    const js = await run('js');
    const gpu = await run('webgpu');
    assert.match(gpu.text, /backend webgpu/);
    assert.match(gpu.text, /LoRA adapters on 2 layers/);
    sameLosses(gpu.losses, js.losses, 3, 'sft');
    // The held-out loss, computed on the device (one number read back a batch).
    const held = (text: string) => Number(/held-out loss ([\d.]+)/.exec(text)![1]);
    assert.ok(Math.abs(held(gpu.text) - held(js.text)) <= 1e-3 * held(js.text), `held-out loss ${held(gpu.text)} on webgpu, ${held(js.text)} on js`);
    const out = join(work, 'sft-webgpu');
    for (const f of ['adapter_model.safetensors', 'optimizer.safetensors', 'sft.json']) assert.ok(existsSync(join(out, f)), f);
    const before = readSafetensors(join(base, 'model.safetensors')).tensors;
    const saved = readSafetensors(join(out, 'model.safetensors')).tensors;
    for (const [name, t] of before) assert.deepEqual(saved.get(name)?.data, t.data, `${name}: the frozen base is saved as it was`);
    const moments = (dir: string) => readSafetensors(join(dir, 'optimizer.safetensors')).tensors;
    const [wantM, gotM] = [moments(join(work, 'sft-js')), moments(out)];
    for (const [name, t] of wantM) {
      const got = gotM.get(name)!.data as Float32Array;
      const want = t.data as Float32Array;
      got.forEach((v, i) => assert.ok(Math.abs(v - want[i]!) <= 1e-2 * Math.abs(want[i]!) + 1e-6, `${name}[${i}]: ${v} vs ${want[i]} (rtol 1e-2 after 3 Adam steps)`));
    }
    // attn sft eval --backend webgpu: the greedy replies generated on the device score as js's.
    // (--show 24: each reply printed with its verdict, compared too.)
    const scored = async (backend: string) => {
      let result: Awaited<ReturnType<typeof runSftEval>> | undefined;
      const { text } = await progressOf(async () => (result = await runSftEval({ model: out, data, all: true, show: 24, backend })));
      return { result: result!, replies: text.split('\n').filter((l) => /^(ok  |MISS)/.test(l)) };
    };
    const [evalJs, evalGpu] = [await scored('js'), await scored('webgpu')];
    assert.equal(evalJs.result.rows, 24);
    assert.equal(evalJs.replies.length, 24);
    assert.deepEqual(evalGpu, evalJs);
  });

  it('attn reward train --backend webgpu with LoRA on the SFT model: each step\'s loss and the held-out ranking as js; reward score as js', async () => {
    const prefs = join(work, 'reward_prefs.jsonl');
    writeFileSync(prefs, Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: `Name ${i}.`, chosen: `It is ${i}.`, rejected: `No idea about ${i} at all.` })).join('\n') + '\n');
    const init = join(work, 'sft-webgpu');
    const opts = { maxIters: 3, batchSize: 4, lr: 1e-2, minLr: 1e-2, warmupIters: 0, evalInterval: 3, logInterval: 1, valFraction: 0.25, loraR: 2 };
    const run = (backend: string) => progressOf(() => runRewardTrainAsync({ init, data: prefs, out: join(work, `reward-${backend}`), backend }, opts));
    const js = await run('js');
    const gpu = await run('webgpu');
    assert.match(gpu.text, /backend webgpu/);
    sameLosses(gpu.losses, js.losses, 3, 'reward');
    const val = (text: string) => /held-out loss ([\d.]+), accuracy ([\d.]+)%, mean margin (-?[\d.]+)/.exec(text)!.slice(1).map(Number);
    const [vg, vj] = [val(gpu.text), val(js.text)];
    assert.ok(Math.abs(vg[0]! - vj[0]!) <= 1e-3 * vj[0]!, `held-out loss ${vg[0]} on webgpu, ${vj[0]} on js`);
    assert.equal(vg[1], vj[1], 'held-out accuracy');
    for (const f of ['reward_head.safetensors', 'adapter_model.safetensors', 'optimizer.safetensors', 'reward.json']) assert.ok(existsSync(join(work, 'reward-webgpu', f)), f);
    const head = (dir: string) => readSafetensors(join(dir, 'reward_head.safetensors')).tensors.get('score.weight')!.data as Float32Array;
    head(join(work, 'reward-webgpu')).forEach((v, i) => assert.ok(Math.abs(v - head(join(work, 'reward-js'))[i]!) <= 1e-2 * Math.abs(v) + 1e-5, `score.weight[${i}] after 3 steps`));
    // attn reward score --backend webgpu: each row's two scores as js.
    const score = async (backend: string) => {
      let out = '';
      const write = process.stdout.write;
      process.stdout.write = ((chunk: string | Uint8Array) => ((out += String(chunk)), true)) as typeof process.stdout.write;
      try {
        await rewardCommand().exitOverride().parseAsync(['score', '--model', join(work, 'reward-webgpu'), '--data', prefs, '--backend', backend], { from: 'user' });
      } finally {
        process.stdout.write = write;
        setBackend('js');
      }
      return out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, number>);
    };
    const [sj, sg] = [await score('js'), await score('webgpu')];
    assert.equal(sg.length, 13);
    sg.slice(0, 12).forEach((r, i) => {
      for (const k of ['chosen', 'rejected']) assert.ok(Math.abs(r[k]! - sj[i]![k]!) <= 1e-4 * Math.abs(sj[i]![k]!) + 1e-5, `row ${r.row} ${k}: ${r[k]} on webgpu, ${sj[i]![k]} on js`);
    });
    assert.deepEqual(sg[12], sj[12]);
  });

  it('attn dpo --backend webgpu --nll-weight 0.5 on the SFT model: each step\'s loss, accuracy and margin as js; the reference saved; dpo eval as js', async () => {
    const prefs = join(work, 'prefs.jsonl');
    writeFileSync(prefs, Array.from({ length: 12 }, (_, i) => JSON.stringify({ prompt: `Add ${i} and ${i + 1}.`, chosen: `${2 * i + 1}.`, rejected: `I do not know ${i}.` })).join('\n') + '\n');
    const init = join(work, 'sft-webgpu');
    const opts = { maxIters: 3, batchSize: 4, lr: 1e-2, minLr: 1e-2, warmupIters: 0, evalInterval: 3, logInterval: 1, valFraction: 0.25, loraR: 2 };
    const run = (backend: string) => progressOf(() => runDpoAsync({ init, data: prefs, out: join(work, `dpo-${backend}`), beta: 0.1, nllWeight: 0.5, backend }, opts));
    const js = await run('js');
    const gpu = await run('webgpu');
    assert.match(gpu.text, /backend webgpu/);
    sameLosses(gpu.losses, js.losses, 3, 'dpo');
    // The statistics come from the policy's log-probabilities read back without waiting: the same lines as js.
    const stats = (text: string) => [...text.matchAll(/step (\d+): preference accuracy (\d+)%, reward margin (-?[\d.]+)/g)].map((m) => [Number(m[1]), Number(m[2]), Number(m[3])]);
    assert.equal(stats(js.text).length, 3);
    assert.deepEqual(stats(gpu.text).map(([s, a]) => [s, a]), stats(js.text).map(([s, a]) => [s, a]), 'the same accuracy at each step');
    stats(gpu.text).forEach(([s, , m], i) => assert.ok(Math.abs(m! - stats(js.text)[i]![2]!) <= 2e-3, `step ${s}: margin ${m} on webgpu, ${stats(js.text)[i]![2]} on js`));
    const val = (text: string) => Number(/held-out DPO loss ([\d.]+)/.exec(text)![1]);
    assert.ok(Math.abs(val(gpu.text) - val(js.text)) <= 1e-3 * val(js.text), `held-out loss ${val(gpu.text)} on webgpu, ${val(js.text)} on js`);
    const ref = (dir: string) => readSafetensors(join(dir, 'dpo_reference.safetensors')).tensors.get('chosen')!.data as Float32Array;
    ref(join(work, 'dpo-webgpu')).forEach((v, i) => assert.ok(Math.abs(v - ref(join(work, 'dpo-js'))[i]!) <= 1e-3 * Math.abs(v) + 1e-4, `reference log-probability ${i}`));
    for (const f of ['adapter_model.safetensors', 'optimizer.safetensors', 'dpo.json']) assert.ok(existsSync(join(work, 'dpo-webgpu', f)), f);
    // attn dpo eval --backend webgpu: the same numbers as on js.
    const evaluate = async (backend: string) => {
      let out = '';
      const write = process.stdout.write;
      process.stdout.write = ((chunk: string | Uint8Array) => ((out += String(chunk)), true)) as typeof process.stdout.write;
      try {
        await dpoCommand().exitOverride().parseAsync(['eval', '--model', join(work, 'dpo-webgpu'), '--data', prefs, '--all', '--backend', backend], { from: 'user' });
      } finally {
        process.stdout.write = write;
        setBackend('js');
      }
      return JSON.parse(out) as Record<string, number>;
    };
    const [ej, eg] = [await evaluate('js'), await evaluate('webgpu')];
    assert.equal(eg.rows, 12);
    assert.equal(eg.preference_accuracy, ej.preference_accuracy);
    for (const k of ['loss', 'reward_margin', 'chosen_reward', 'rejected_reward']) assert.ok(Math.abs(eg[k]! - ej[k]!) <= 1e-3 * Math.abs(ej[k]!) + 1e-4, `dpo eval ${k}: ${eg[k]} on webgpu, ${ej[k]} on js`);
    assert.ok(ej.reward_margin !== 0, 'the policy moved from its reference (a test that can tell)');
  });
});
