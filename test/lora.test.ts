import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Llama } from '../src/models/llama.js';
import { parseLlamaConfig } from '../src/models/llama_config.js';
import { loadModel } from '../src/io/model_dir.js';
import { loadAdapter, readAdapter, saveAdapter } from '../src/io/peft.js';
import { readSafetensors, writeSafetensors } from '../src/io/safetensors.js';
import { addLoRA, LoRALinear, loraLayers, loraParameters, mergeLoRA, withoutLoRA } from '../src/nn/lora.js';
import { AdamW } from '../src/optim/adamw.js';
import { runLoRAReferenceCheck } from '../src/reference/lora_check.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { add, scale } from '../src/tensor/ops/elementwise.js';
import { sum } from '../src/tensor/ops/reduce.js';
import { linear } from '../src/tensor/ops/linear.js';
import { loraLinear } from '../src/tensor/ops/lora_linear.js';
import { Tensor } from '../src/tensor/tensor.js';
import { dpoLoss, negLogSigmoid, preferenceAccuracy, responseMask, sequenceLogProbs } from '../src/train/dpo.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, assertUserError, gradCheck, hasShared, randn, REFERENCE_DIR, referenceSkip, runAttn, SHARED } from './helpers.js';

const addon = loadAddon();
const LORA_DIR = resolve(SHARED, 'reference', 'gpt2-tiny-lora');
const skip = referenceSkip(!hasShared(LORA_DIR) && `../shared/reference/gpt2-tiny-lora is absent (${LORA_DIR}): LoRA reference check skipped`);

const tinyGPT = (seed = 1) => new GPT(parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 8, block_size: 16, vocab_size: 13 }), new Rng(seed));
const tinyLlama = (seed = 1) =>
  new Llama(parseLlamaConfig({ n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 8, head_dim: 2, intermediate_size: 6, vocab_size: 11, block_size: 16, rms_norm_eps: 1e-5 }), new Rng(seed));
const ids = Int32Array.of(1, 5, 9, 2, 3, 7, 0, 10);

/** Give every adapter random B values (B starts at zero, which would hide a wrong forward or merge). */
function randomizeB(model: GPT | Llama, seed = 9): void {
  const rng = new Rng(seed);
  for (const [, l] of loraLayers(model)) for (let i = 0; i < l.lora_B.weight.size; i++) l.lora_B.weight.data[i] = rng.normal() * 0.3;
}

describe('LoRA adapters', () => {
  it('starts as the base model exactly (B = 0), wraps only the targets, and freezes the base', () => {
    const m = tinyGPT().eval();
    const before = noGrad(() => m.forward(ids, [2, 4]).logits.data.slice());
    const wrapped = addLoRA(m, { r: 2, alpha: 4, targets: ['c_attn', 'c_fc'] });
    assert.deepEqual(wrapped, ['h.0.attn.c_attn', 'h.0.mlp.c_fc', 'h.1.attn.c_attn', 'h.1.mlp.c_fc']);
    assert.ok(m.h[0]!.attn.c_attn instanceof LoRALinear && !(m.h[0]!.attn.c_proj instanceof LoRALinear));
    assertClose(noGrad(() => m.forward(ids, [2, 4]).logits.data), before, 0);
    const names = loraParameters(m).map(([n]) => n);
    assert.deepEqual(names.slice(0, 2), ['h.0.attn.c_attn.lora_A.weight', 'h.0.attn.c_attn.lora_B.weight']);
    assert.equal(names.length, 8);
    const A = m.h[0]!.attn.c_attn as LoRALinear;
    assert.deepEqual([A.lora_A.weight.shape, A.lora_B.weight.shape, A.scaling], [[2, 8], [24, 2], 2]);
    // Kaiming-uniform: inside ±1/√in, not all zero.
    assert.ok(A.lora_A.weight.data.every((v) => Math.abs(v) <= 1 / Math.sqrt(8)) && A.lora_A.weight.data.some((v) => v !== 0));
    // Base parameters keep their names; backward computes gradients for the adapters only.
    assert.ok(m.namedParameters().some(([n]) => n === 'h.0.attn.c_attn.weight'));
    m.train();
    backward(m.forward(ids, [2, 4], Int32Array.of(5, 9, 2, 3, 7, 0, 10, 4)).loss!);
    const adapter = new Set(loraParameters(m).map(([, p]) => p));
    for (const [n, p] of m.namedParameters()) {
      // With B = 0 the gradient reaches B only (dL/dA goes through B); A learns once B has moved.
      if (adapter.has(p)) assert.ok(p.grad && (n.includes('lora_A') || p.grad.some((g) => g !== 0)), `${n} has a gradient`);
      else assert.equal(p.grad, null, `${n} is frozen`);
    }
  });

  it('a target that names no linear layer is a UserError naming it; ranks and alphas are checked', () => {
    assert.throws(() => addLoRA(tinyGPT(), { r: 2, alpha: 4, targets: ['c_attn', 'q_proj'] }), (e: Error) => e instanceof UserError && /"q_proj" names no linear layer .*c_attn/.test(e.message));
    assert.throws(() => addLoRA(tinyGPT(), { r: 0, alpha: 4, targets: ['c_attn'] }), UserError);
    assert.throws(() => addLoRA(tinyGPT(), { r: 2, alpha: 4, targets: ['ln_1'] }), /names no linear layer/);
    const m = tinyGPT();
    addLoRA(m, { r: 2, alpha: 4, targets: ['c_fc'] });
    assert.throws(() => addLoRA(m, { r: 2, alpha: 4, targets: ['c_attn'] }), /already has LoRA adapters/);
  });

  it('the fused op: gradients of x, W, b, A, B (and a separate adapter input) match finite differences', () => {
    const rng = new Rng(11);
    const x = randn([2, 3, 5], rng);
    const W = randn([4, 5], rng);
    const b = randn([4], rng);
    const A = randn([2, 5], rng);
    const B = randn([4, 2], rng);
    gradCheck(() => loraLinear(x, W, b, x, A, B, 1.5), [x, W, b, A, B]);
    const u = randn([2, 3, 5], rng);
    gradCheck(() => loraLinear(x, W, null, u, A, B, 0.5), [x, W, u, A, B]);
    // The same values as composing it from linear products.
    const y = loraLinear(x, W, b, x, A, B, 1.5);
    const want = add(linear(x, W, b), scale(linear(linear(x, A), B), 1.5));
    assertClose(y.data, want.data, 1e-5);
  });

  it('the native backend computes the fused op as the js reference does (forward and every gradient)', { skip: addon ? false : 'native addon not built' }, () => {
    registerBackend(createNativeBackend(addon!));
    const run = (name: string) => {
      setBackend(name);
      const rng = new Rng(12);
      const ts = [randn([3, 7, 40], rng), randn([24, 40], rng), randn([24], rng), randn([3, 7, 40], rng), randn([4, 40], rng), randn([24, 4], rng)];
      const [x, W, b, u, A, B] = ts as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
      const y = loraLinear(x, W, b, u, A, B, 2);
      const out = y.data.slice();
      backward(y, Float32Array.from({ length: y.size }, (_, i) => Math.sin(i)));
      return [out, ...ts.map((t) => t.grad!.slice())];
    };
    try {
      const want = run('js');
      const got = run('native');
      got.forEach((g, i) => assertClose(g, want[i]!, 1e-4, `tensor ${i}`));
    } finally {
      setBackend('js');
    }
  });

  it('gradients of the adapters match finite differences (GPT with dropout off, Llama q_proj/v_proj)', () => {
    for (const m of [tinyGPT(3), tinyLlama(3)]) {
      addLoRA(m, { r: 2, alpha: 3, targets: m instanceof GPT ? ['c_attn', 'c_proj'] : ['q_proj', 'v_proj', 'down_proj'] });
      randomizeB(m);
      m.eval();
      gradCheck(() => m.forward(ids, [2, 4], Int32Array.of(5, 9, 2, 3, 7, 0, 10, 4)).loss!, loraParameters(m).map(([, p]) => p));
    }
  });

  it('merging folds B·A·alpha/r into the weights: the same function, plain Linears, all parameters trainable', () => {
    for (const m of [tinyGPT(4), tinyLlama(4)]) {
      addLoRA(m, { r: 3, alpha: 6, targets: m instanceof GPT ? ['c_attn', 'c_fc'] : ['q_proj', 'up_proj'] });
      randomizeB(m);
      m.eval();
      const withAdapter = noGrad(() => m.forward(ids, [2, 4]).logits.data.slice());
      const base = withoutLoRA(m, () => noGrad(() => m.forward(ids, [2, 4]).logits.data.slice()));
      assert.ok(base.some((v, i) => Math.abs(v - withAdapter[i]!) > 1e-3), 'the adapter changes the model');
      mergeLoRA(m);
      assert.equal(loraLayers(m).length, 0);
      assert.ok(m.parameters().every((p) => p.requiresGrad));
      assert.ok(!m.namedParameters().some(([n]) => n.includes('lora_')));
      assertClose(noGrad(() => m.forward(ids, [2, 4]).logits.data), withAdapter, 1e-5);
    }
  });

  it('an optimizer over loraParameters trains the adapters and leaves the base untouched', () => {
    const m = tinyGPT(5);
    addLoRA(m, { r: 2, alpha: 2, dropout: 0.1, targets: ['c_attn'], rng: new Rng(2) });
    const baseBefore = m.h[0]!.attn.c_attn.weight.data.slice();
    const opt = new AdamW(loraParameters(m), { lr: 5e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 });
    const targets = Int32Array.of(5, 9, 2, 3, 7, 0, 10, 4);
    const loss0 = m.forward(ids, [2, 4], targets).loss!.item();
    for (let s = 0; s < 20; s++) {
      opt.zeroGrad();
      backward(m.forward(ids, [2, 4], targets).loss!);
      opt.update();
    }
    assert.ok(m.forward(ids, [2, 4], targets).loss!.item() < loss0 - 0.05);
    assert.deepEqual(m.h[0]!.attn.c_attn.weight.data, baseBefore);
  });
});

describe('PEFT adapter files', () => {
  it('GPT-2 and Llama adapters save with PEFT names and load back to the same function', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-peft-'));
    try {
      for (const make of [tinyGPT, tinyLlama]) {
        const m = make(6);
        addLoRA(m, { r: 2, alpha: 8, targets: m instanceof GPT ? ['c_attn', 'c_fc'] : ['q_proj', 'v_proj'] });
        randomizeB(m);
        m.eval();
        const want = noGrad(() => m.forward(ids, [2, 4]).logits.data.slice());
        const out = join(dir, make.name);
        saveAdapter(m, out, { baseModel: 'tiny' });
        const names = [...readSafetensors(join(out, 'adapter_model.safetensors')).tensors.keys()];
        const first = m instanceof GPT ? 'base_model.model.transformer.h.0.attn.c_attn.lora_A.weight' : 'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight';
        assert.ok(names.includes(first), names.join());
        const cfg = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
        assert.deepEqual([cfg.peft_type, cfg.r, cfg.lora_alpha, cfg.fan_in_fan_out], ['LORA', 2, 8, m instanceof GPT]);
        const fresh = make(6).eval();
        const a = loadAdapter(fresh, out);
        assert.equal(a.scaling, 4);
        assertClose(noGrad(() => fresh.forward(ids, [2, 4]).logits.data), want, 1e-6);
      }
      // An adapter whose base does not match: another family, or other shapes.
      assert.throws(() => readAdapter(join(dir, 'tinyGPT'), tinyLlama()), (e: Error) => e instanceof UserError && /GPT-2 model, but the base is a Llama-family model/.test(e.message));
      const wider = new GPT(parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 16, block_size: 16, vocab_size: 13 }));
      assert.throws(() => readAdapter(join(dir, 'tinyGPT'), wider), (e: Error) => e instanceof UserError && /lora_A.weight has shape \[2,8\] but this base needs \[2,16\]/.test(e.message));
      const shallow = new GPT(parseGPTConfig({ n_layer: 1, n_head: 2, n_embd: 8, block_size: 16, vocab_size: 13 }));
      assert.throws(() => readAdapter(join(dir, 'tinyGPT'), shallow), /h\.1\.attn\.c_attn, which is not a linear layer of the base/);
      assert.throws(() => readAdapter(dir, tinyGPT()), /has no adapter_config.json/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('DPO math', () => {
  it('sequence log-probabilities count response tokens only, and match log-softmax by hand', () => {
    const m = tinyGPT(7).eval();
    const mask = responseMask([2, 3], [2, 4]);
    assert.deepEqual([...mask], [0, 0, 1, 1, 0, 0, 0, 1]);
    const lp = noGrad(() => sequenceLogProbs(m, { ids, shape: [2, 4], responseMask: mask }));
    const logits = noGrad(() => m.forward(ids, [2, 4]).logits);
    const V = 13;
    const logProb = (row: number, t: number, token: number) => {
      const x = logits.data.subarray((row * 4 + t) * V, (row * 4 + t + 1) * V);
      const max = Math.max(...x);
      return x[token]! - max - Math.log(x.reduce((s, v) => s + Math.exp(v - max), 0));
    };
    assertClose(lp.data, [logProb(0, 1, 9) + logProb(0, 2, 2), logProb(1, 2, 10)], 1e-5);
    assert.throws(() => sequenceLogProbs(m, { ids, shape: [2, 4], responseMask: Uint8Array.of(1, 0, 0, 0, 0, 0, 0, 0) }), /first token/);
  });

  it('the loss, rewards, margins and accuracy are the formulas; the loss has gradients', () => {
    const pc = Tensor.from([-3, -5], [2], true);
    const pr = Tensor.from([-4, -4], [2], true);
    const rc = Tensor.from([-3.5, -4.5], [2]);
    const rr = Tensor.from([-3.8, -4.2], [2]);
    const r = dpoLoss(pc, pr, rc, rr, 0.5);
    const zs = [0.5 * (0.5 - -0.2), 0.5 * (-0.5 - 0.2)];
    const want = zs.reduce((s, z) => s + Math.log(1 + Math.exp(-z)), 0) / 2;
    assertClose(r.loss.data, [want], 1e-6);
    assertClose(r.chosenRewards.data, [0.25, -0.25], 1e-6);
    assertClose(r.rejectedRewards.data, [-0.1, 0.1], 1e-6);
    assertClose(r.margins.data, zs, 1e-6);
    assert.equal(preferenceAccuracy(r.margins.data), 0.5);
    gradCheck(() => dpoLoss(pc, pr, rc, rr, 0.5).loss, [pc, pr]);
    // −log σ(z) stays finite far from 0.
    assertClose(negLogSigmoid(Tensor.from([-200, 200, 0])).data, [200, 0, Math.LN2], 1e-4);
    // Its gradient is −σ(−z) everywhere, z = 0 included, where every DPO pair starts
    // (a relu-kinked form gave 0 there, and DPO never moved off its reference).
    const z = Tensor.from([-3, -0.5, 0, 0.5, 3]);
    z.requiresGrad = true;
    backward(sum(negLogSigmoid(z)));
    assertClose(z.grad!, [-3, -0.5, 0, 0.5, 3].map((v) => -1 / (1 + Math.exp(v))), 1e-6);
  });
});

describe('agreement with PyTorch: LoRA and DPO (shared/reference/gpt2-tiny-lora)', () => {
  it('npm run reference -- gpt2-tiny --lora gpt2-tiny-lora passes every group', { skip }, () => {
    const r = spawnSync(process.execPath, [resolve('dist/src/cli/main.js'), 'reference', REFERENCE_DIR, '--lora', LORA_DIR], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    for (const g of ['logits', 'gradients', 'lora-logits', 'dpo-logps', 'dpo-loss', 'lora-grads', 'merged']) assert.match(r.stdout, new RegExp(`ok\\s+${g}\\s`));
  });

  it('fails when the adapter is perturbed (a copy in a temp dir)', { skip }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-lora-ref-'));
    try {
      cpSync(LORA_DIR, dir, { recursive: true });
      const path = join(dir, 'adapter_model.safetensors');
      const f = readSafetensors(path);
      (f.tensors.get('base_model.model.transformer.h.1.mlp.c_fc.lora_B.weight')!.data as Float32Array)[3]! += 1e-2;
      writeSafetensors(path, f.tensors, f.metadata);
      const report = runLoRAReferenceCheck(REFERENCE_DIR, dir);
      assert.equal(report.pass, false);
      assert.ok(report.groups.find((g) => g.group === 'merged' && !g.pass && g.worstAt === 'h.1.mlp.c_fc.weight'));
      assert.ok(report.groups.find((g) => g.group === 'lora-logits')!.pass === false);
      const cli = spawnSync(process.execPath, [resolve('dist/src/cli/main.js'), 'reference', REFERENCE_DIR, '--lora', dir], { encoding: 'utf8' });
      assert.equal(cli.status, 1, cli.stdout + cli.stderr);
      assert.match(cli.stdout, /FAIL merged/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('attn merge', () => {
  it('writes the merged model (Hugging Face layout for an HF base) whose logits are the adapter\'s; bad bases are one-line errors', { skip }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-merge-'));
    try {
      const out = join(dir, 'merged');
      const r = runAttn(['merge', '--model', REFERENCE_DIR, '--adapter', LORA_DIR, '--out', out], dir);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /merged 4 layers .*Hugging Face GPT-2 layout/);
      const weights = readSafetensors(join(out, 'model.safetensors')).tensors;
      const expected = readSafetensors(join(LORA_DIR, 'expected.safetensors')).tensors;
      assertClose(weights.get('h.1.mlp.c_fc.weight')!.data as Float32Array, expected.get('merged.h.1.mlp.c_fc.weight')!.data as Float32Array, 1e-5);
      const { model } = loadModel(out);
      const ids = Int32Array.from(expected.get('input_ids')!.data as BigInt64Array, Number);
      assertClose(noGrad(() => model.forward(ids, [2, 12]).logits.data), expected.get('lora.logits')!.data as Float32Array, 1e-4);
      // An adapter made for another family, or a directory that is no adapter.
      const llamaAdapter = join(dir, 'llama-adapter');
      const llama = tinyLlama();
      addLoRA(llama, { r: 2, alpha: 2, targets: ['q_proj'] });
      saveAdapter(llama, llamaAdapter);
      assertUserError(runAttn(['merge', '--model', REFERENCE_DIR, '--adapter', llamaAdapter, '--out', join(dir, 'x')], dir), /is for a Llama-family model, but the base is a GPT-2 model/);
      assertUserError(runAttn(['merge', '--model', REFERENCE_DIR, '--adapter', join(dir, 'nope'), '--out', join(dir, 'x')], dir), /has no adapter_config.json/);
      assert.ok(!existsSync(join(dir, 'x')));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
