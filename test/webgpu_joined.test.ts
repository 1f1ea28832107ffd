import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { openedWebGpu } from '../src/backend/webgpu/index.js';
import { logitsCached } from '../src/generate/cached_forward.js';
import { KVCache } from '../src/generate/kv_cache.js';
import type { Llama } from '../src/models/llama.js';
import type { LlamaConfigInput } from '../src/models/llama_config.js';
import { joinedLinear } from '../src/nn/joined_linear.js';
import { moveToBackend } from '../src/nn/placement.js';
import { quantize } from '../src/nn/quantized_linear.js';
import { AdamW } from '../src/optim/adamw.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { tinyLlama } from './llama_fixture.js';
import { assertNear, webgpu, webgpuSkip } from './webgpu_helpers.js';

/*
 * Projections that read one input run as one product on a device when their
 * weights adjoin (nn/joined_linear.ts): a Llama layer's q·k·v and gate·up.
 * Against js: the logits of a prompt (several positions) and of each cached
 * decode step, with and without biases; the dispatches a decode token
 * records; and weights re-homed by the optimizer's arena and updated there,
 * which inference must still join and see. SwiftShader without a GPU.
 */

const skip = await webgpuSkip('webgpu joined projection tests');
after(() => setBackend('js'));

const PROMPT = Int32Array.of(3, 14, 15, 9, 26);
const NEXT = [5, 35, 8];

/** The prompt's logits, then each decode step's, through a KV cache (host arrays). */
async function logits(m: Llama): Promise<Float32Array[]> {
  const cache = new KVCache(m.config, 1, 16);
  const out = [await noGrad(() => logitsCached(m, PROMPT, [1, PROMPT.length], cache)).read()];
  for (const id of NEXT) out.push(await noGrad(() => logitsCached(m, Int32Array.of(id), [1, 1], cache)).read());
  return out;
}

/** Dispatches one decode token records on the device. */
function dispatchesPerToken(m: Llama): number {
  const cache = new KVCache(m.config, 1, 8);
  noGrad(() => logitsCached(m, Int32Array.of(1), [1, 1], cache));
  const before = openedWebGpu()!.stats.dispatches;
  noGrad(() => logitsCached(m, Int32Array.of(2), [1, 1], cache));
  return openedWebGpu()!.stats.dispatches - before;
}

/**
 * `make()`'s logits (logits() above) on js, then on webgpu with a fresh
 * model moved there; `onDevice` checks the device's model before its logits.
 * Each step's logits must agree within rtol 1e-4.
 */
async function sameLogits(make: () => Llama, what: string, onDevice: (m: Llama) => void = () => {}): Promise<void> {
  setBackend('js');
  const want = await logits(make());
  await webgpu();
  try {
    const m = make();
    moveToBackend(m);
    onDevice(m);
    const got = await logits(m);
    got.forEach((g, i) => assertNear(g, want[i]!, 1e-4, 1e-5, `${what}: ${i === 0 ? 'the prompt' : `decode step ${i}`}`));
  } finally {
    setBackend('js');
  }
}

const variants: Array<[string, Partial<LlamaConfigInput>]> = [
  ['no biases (Llama)', {}],
  ['q, k, v and MLP biases (Qwen2 has the first)', { attention_bias: true, mlp_bias: true }],
];

describe('joined projections on webgpu', { skip }, () => {
  for (const [what, config] of variants) {
    it(`${what}: the prompt's and every decode step's logits as js (rtol 1e-4); 5 dispatches a layer, not 8`, async () => {
      const make = () => {
        const m = tinyLlama(config, 11);
        // Nonzero biases, so that a bias laid out or added wrongly shows.
        for (const [name, p] of m.namedParameters()) if (name.endsWith('.bias')) p.data.forEach((_, i) => (p.data[i] = 0.01 * ((i % 7) - 3)));
        return m;
      };
      await sameLogits(make, what, (m) => {
        const layer = m.model.layers[0]!;
        assert.ok(noGrad(() => joinedLinear([layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj])), 'q, k, v adjoin after moveToBackend');
        assert.ok(noGrad(() => joinedLinear([layer.mlp.gate_proj, layer.mlp.up_proj])), 'gate, up adjoin');
        assert.equal(joinedLinear([layer.self_attn.q_proj, layer.self_attn.k_proj]), null, 'never while a gradient is recorded');
        const [one, three] = [tinyLlama({ ...config, n_layer: 1 }), tinyLlama({ ...config, n_layer: 3 })];
        moveToBackend(one);
        moveToBackend(three);
        // q·k·v (the RMSNorm folded in), cached attention (RoPE inside), o_proj (+ x), gate·up (the norm folded in), down (SwiGLU folded in, + x).
        assert.equal((dispatchesPerToken(three) - dispatchesPerToken(one)) / 2, 5);
      });
    });
  }

  it('weights re-homed in the optimizer\'s arena and updated there: inference still joins them, and sees the updates', async () => {
    await webgpu();
    try {
      const m = tinyLlama({ attention_bias: true }, 11);
      moveToBackend(m);
      const opt = new AdamW(m.namedParameters(), { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 });
      const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 7 + 2) % 41);
      const targets = Int32Array.from({ length: 12 }, (_, i) => (i * 3 + 1) % 41);
      for (let step = 0; step < 2; step++) {
        opt.zeroGrad();
        backward(m.train().forward(ids, [2, 6], targets).loss!);
        opt.update();
      }
      m.eval();
      const layer = m.model.layers[1]!;
      assert.ok(noGrad(() => joinedLinear([layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj])), 'the arena keeps q, k, v end to end');
      const got = await logits(m);
      // The same weights on js: every parameter read back into a fresh model.
      const values = await Promise.all(m.parameters().map((p) => p.read()));
      setBackend('js');
      const ref = tinyLlama({ attention_bias: true }, 11);
      ref.parameters().forEach((p, i) => p.data.set(values[i]!));
      const want = await logits(ref);
      assert.ok(Math.abs(want[0]![0]! - (await logits(tinyLlama({ attention_bias: true }, 11)))[0]![0]!) > 1e-6, 'the steps changed the model');
      got.forEach((g, i) => assertNear(g, want[i]!, 1e-4, 1e-5, `after training: ${i === 0 ? 'the prompt' : `decode step ${i}`}`));
    } finally {
      setBackend('js');
    }
  });

  it('an int8 model\'s projections are not plain Linear layers: each runs on its own, as js', async () => {
    const make = () => {
      const m = tinyLlama({}, 11);
      quantize(m);
      return m;
    };
    await sameLogits(make, 'int8', (m) => {
      const layer = m.model.layers[0]!;
      assert.equal(noGrad(() => joinedLinear([layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj])), null);
    });
  });
});
