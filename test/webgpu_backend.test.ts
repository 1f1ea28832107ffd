import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { backend, setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
import { DeviceValuesError } from '../src/backend/storage.js';
import { openedWebGpu } from '../src/backend/webgpu/index.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Dropout } from '../src/nn/dropout.js';
import { Embedding } from '../src/nn/embedding.js';
import { LayerNorm } from '../src/nn/layernorm.js';
import { Linear } from '../src/nn/linear.js';
import { Module } from '../src/nn/module.js';
import { moveToBackend, withHostValues } from '../src/nn/placement.js';
import { AdamW } from '../src/optim/adamw.js';
import { backward } from '../src/tensor/autograd.js';
import { crossEntropy } from '../src/tensor/ops/cross_entropy.js';
import { gelu } from '../src/tensor/ops/elementwise.js';
import { linear } from '../src/tensor/ops/linear.js';
import { withPrecision } from '../src/tensor/precision.js';
import { releaseStorage, Tensor } from '../src/tensor/tensor.js';
import { trainStep, trainStepAsync, type Objective } from '../src/train/step.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { webgpuSkip } from './webgpu_helpers.js';

/*
 * The webgpu backend against the js oracle through the whole stack: ops,
 * autograd, AdamW and clipping over device storage. Without a GPU, run on
 * SwiftShader (VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json).
 * With no adapter the tests skip with a message, unless ATTN_REQUIRE_WEBGPU=1
 * (CI), where they fail.
 */

const skip = await webgpuSkip('WebGPU backend tests');
after(() => setBackend('js'));

/** A small next-token model over every entry point a GPT step uses except attention: embedding, linear, LayerNorm, GELU, dropout, cross-entropy. */
class TinyLM extends Module {
  wte: Embedding;
  fc: Linear;
  ln: LayerNorm;
  drop: Dropout;
  head: Linear;
  constructor(readonly vocab: number, dim: number, seed: number, dropout: number) {
    super();
    const rng = new Rng(seed);
    this.wte = new Embedding(vocab, dim, { std: 0.5, rng });
    this.fc = new Linear(dim, 4 * dim, { bias: true, std: 0.2, rng });
    this.ln = new LayerNorm(4 * dim, { bias: true });
    this.drop = new Dropout(dropout, rng);
    this.head = new Linear(4 * dim, vocab, { bias: true, std: 0.2, rng });
  }

  loss(b: { x: Int32Array; y: Int32Array }): Tensor {
    const h = this.drop.forward(this.ln.forward(gelu(this.fc.forward(this.wte.forward(b.x, [b.x.length])))));
    return crossEntropy(this.head.forward(h), b.y, { ignoreIndex: -1 });
  }
}

const VOCAB = 37;
function batch(seed: number, n = 24): { x: Int32Array; y: Int32Array } {
  const r = new Rng(seed);
  const x = Int32Array.from({ length: n }, () => r.int(VOCAB));
  const y = Int32Array.from({ length: n }, (_, i) => (i % 7 === 3 ? -1 : r.int(VOCAB))); // some ignored targets
  return { x, y };
}

/** Worst |got − want| / (atol + rtol·|want|) must be ≤ 1. */
function assertNear(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i]! - want[i]!) / (atol + rtol * Math.abs(want[i]!));
    assert.ok(r <= 1, `${what}: element ${i} is ${got[i]} vs ${want[i]} (rtol ${rtol}, atol ${atol})`);
  }
}

describe('webgpu backend', { skip }, () => {
  it('one forward and backward: the loss and every gradient as js computes them (rtol 1e-4, atol 1e-5)', async () => {
    const data = batch(1);
    setBackend('js');
    const ref = new TinyLM(VOCAB, 16, 5, 0.1);
    const refLoss = ref.loss(data);
    backward(refLoss);

    await selectBackendAsync('webgpu');
    const model = new TinyLM(VOCAB, 16, 5, 0.1);
    moveToBackend(model);
    const loss = model.loss(data);
    assert.throws(() => loss.item(), DeviceValuesError, 'a device value is not readable synchronously');
    backward(loss);
    assertNear(await loss.read(), [refLoss.item()], 1e-5, 1e-6, 'loss');
    const want = new Map(ref.namedParameters());
    for (const [name, p] of model.namedParameters()) {
      assertNear(await readGrad(p), want.get(name)!.grad!, 1e-4, 1e-5, `gradient of ${name}`);
    }
    setBackend('js');
  });

  it('a full training step of a small GPT (dropout on): the loss and every gradient as js (rtol 1e-3, atol 1e-5)', async () => {
    const cfg = parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 32, block_size: 16, vocab_size: VOCAB, bias: true, dropout: 0.1 });
    const [B, T] = [2, 16];
    const { x, y } = batch(3, B * T);
    setBackend('js');
    const ref = new GPT(cfg, new Rng(4));
    const refLoss = ref.forward(x, [B, T], y).loss!;
    backward(refLoss);

    await selectBackendAsync('webgpu');
    const model = new GPT(cfg, new Rng(4));
    moveToBackend(model);
    const loss = model.forward(x, [B, T], y).loss!;
    backward(loss);
    assertNear(await loss.read(), [refLoss.item()], 1e-5, 1e-6, 'loss');
    const want = new Map(ref.namedParameters());
    for (const [name, p] of model.namedParameters()) assertNear(await readGrad(p), want.get(name)!.grad!, 1e-3, 1e-5, `gradient of ${name}`);
    setBackend('js');
  });

  it('several AdamW steps with gradient clipping: losses, norms and weights as js (rtol 1e-4)', async () => {
    const run = async (device: boolean) => {
      if (device) await selectBackendAsync('webgpu');
      else setBackend('js');
      const model = new TinyLM(VOCAB, 16, 9, 0);
      const opt = new AdamW(model.namedParameters(), { lr: 3e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
      const objective: Objective<{ x: Int32Array; y: Int32Array }> = { loss: (b) => model.loss(b) };
      const steps = [];
      // Two micro-batches per step (gradient accumulation), clipped hard so the clip matters.
      for (let s = 0; s < 4; s++) steps.push(await trainStepAsync(opt, objective, [batch(10 + 2 * s), batch(11 + 2 * s)], { lr: 3e-2, gradClip: 0.5 }));
      const weights = await withHostValues(model.parameters(), () => model.parameters().map((p) => p.data.slice()));
      setBackend('js');
      return { steps, weights };
    };
    const want = await run(false);
    const got = await run(true);
    got.steps.forEach((r, i) => {
      assertNear([r.loss], [want.steps[i]!.loss], 1e-4, 1e-6, `loss of step ${i + 1}`);
      assertNear([r.gradNorm], [want.steps[i]!.gradNorm], 1e-4, 1e-6, `gradient norm of step ${i + 1}`);
    });
    assert.ok(want.steps[0]!.gradNorm > 0.5, 'the clip was active');
    got.weights.forEach((w, i) => assertNear(w, want.weights[i]!, 1e-3, 1e-5, `weights ${i} after 4 steps`));
  });

  it('a host-only call on device values names the way out', async () => {
    await selectBackendAsync('webgpu');
    const model = new TinyLM(VOCAB, 8, 1, 0);
    const opt = new AdamW(model.namedParameters(), { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0 });
    const objective: Objective<{ x: Int32Array; y: Int32Array }> = { loss: (b) => model.loss(b) };
    assert.throws(() => trainStep(opt, objective, [batch(1)], { lr: 1e-3, gradClip: 1 }), /not supported on webgpu: trainStep \(use trainStepAsync\)/);
    assert.throws(() => model.head.weight.data, /not supported on webgpu: tensor\.data .*await tensor\.read\(\)/);
    await openedWebGpu()!.sync();
    setBackend('js');
  });

  it('clipByNorm (a queued step\'s clipping): the norm, the factor and the clipped gradients as js, and no scaling at or under the limit', async () => {
    const rng = new Rng(5);
    const grads = [Float32Array.from({ length: 3000 }, () => rng.normal()), Float32Array.from({ length: 37 }, () => rng.normal())];
    const sq = grads.reduce((s, g) => s + g.reduce((a, x) => a + x * x, 0), 0);
    for (const maxNorm of [Math.sqrt(sq) / 3, Math.sqrt(sq) * 2]) {
      setBackend('js');
      const hostGrads = grads.map((g) => g.slice());
      const hostStats = Float32Array.of(sq, 0, 0);
      backend().clipByNorm(hostGrads, hostStats, maxNorm);
      await selectBackendAsync('webgpu');
      try {
        const dev = backend().device!;
        const devGrads = grads.map((g) => dev.upload(g));
        const devStats = dev.upload(Float32Array.of(sq, 0, 0));
        backend().clipByNorm(devGrads, devStats, maxNorm);
        const stats = await dev.read(devStats);
        assert.ok(Math.abs(stats[1]! - hostStats[1]!) <= 1e-5 * hostStats[1]! && Math.abs(stats[2]! - hostStats[2]!) <= 1e-6, `stats ${stats} vs ${hostStats}`);
        if (maxNorm > Math.sqrt(sq)) assert.equal(hostStats[2], 1, 'no scaling under the limit');
        for (const [i, g] of devGrads.entries()) {
          const got = await dev.read(g);
          for (let j = 0; j < got.length; j++) assert.ok(Math.abs(got[j]! - hostGrads[i]![j]!) <= 1e-6 + 1e-6 * Math.abs(hostGrads[i]![j]!), `gradient ${i}[${j}]`);
        }
      } finally {
        setBackend('js');
      }
    }
  });

  it('bf16 matrix products (withPrecision) are refused on webgpu in one line, not computed in FP32 unannounced', async () => {
    await selectBackendAsync('webgpu');
    try {
      const x = Tensor.from(new Float32Array(6).fill(0.5), [2, 3]);
      const w = Tensor.from(new Float32Array(12).fill(0.25), [4, 3]);
      assert.throws(() => withPrecision('bf16', () => linear(x, w, null)), (e: unknown) => e instanceof UserError && /bf16 matrix products run on the host backends/.test(e.message));
      assert.deepEqual([...(await linear(x, w, null).read())], Array(8).fill(0.375));
    } finally {
      setBackend('js');
    }
  });

  it('an allocation over the device limit is one line naming the limit', async () => {
    await selectBackendAsync('webgpu');
    const limit = openedWebGpu()!.limits.maxBufferSize;
    assert.throws(() => Tensor.zeros([Math.ceil(limit / 4) + 1024]), (e: unknown) => e instanceof UserError && /over this device's max\w+Size \(\d+ bytes\)/.test(e.message) && !e.message.includes('\n'));
    setBackend('js');
  });

  it('storage given back twice is refused (two owners would overwrite each other), and taken again it can be given back once more', async () => {
    await selectBackendAsync('webgpu');
    try {
      const t = Tensor.zeros([64]);
      releaseStorage(t.storage);
      assert.throws(() => releaseStorage(t.storage), /released twice/);
      openedWebGpu()!.flush();
      const again = Tensor.zeros([64]); // the pool hands the same buffer out
      releaseStorage(again.storage);
    } finally {
      setBackend('js');
    }
  });
});

async function readGrad(p: Tensor): Promise<Float32Array> {
  const g = p.gradStorage;
  assert.ok(g, 'the parameter has a gradient');
  return new Tensor(g, p.shape).read();
}
