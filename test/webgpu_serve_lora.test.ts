import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
import { batchForward, batchForwardOnDevice } from '../src/generate/batch_step.js';
import { generate } from '../src/generate/engine.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { loadAdapter, readAdapter } from '../src/io/peft.js';
import { LoRABank } from '../src/nn/lora_bank.js';
import { moveToBackend } from '../src/nn/placement.js';
import { quantize } from '../src/nn/quantized_linear.js';
import { makeAdapter, startTiny, tinyGPT, tinyTokenizer } from './serve_fixture.js';
import { assertNear, webgpuSkip } from './webgpu_helpers.js';

/*
 * LoRA adapters served over one base on webgpu (nn/lora_bank.ts's device
 * path: each adapter's rows gathered and scattered back by products with a
 * one-hot selection, nothing read to the host): the scores of a batch that
 * mixes the base and two adapters equal js's, and `attn serve --adapter`
 * on webgpu answers each adapter's requests, alone and all in one batch, with
 * the adapted model's greedy text on js. SwiftShader without a GPU; skips as
 * webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('WebGPU LoRA serving tests');
const root = mkdtempSync(join(tmpdir(), 'attn-webgpu-lora-'));
after(() => {
  setBackend('js');
  rmSync(root, { recursive: true, force: true });
});

const A1 = join(root, 'a1');
const A2 = join(root, 'a2');
makeAdapter(A1, 1, ['c_attn', 'c_fc']);
makeAdapter(A2, 2, ['c_attn', 'c_proj']);

const PROMPTS = [[5, 9, 3], [7], [1, 2, 3, 4, 5], [8, 8]];
const WHICH = [-1, 0, 1, 0]; // base, a1, a2, a1

/** The base with both adapters in its bank, the scores of one batch mixing them, on the current backend. */
async function mixedScores(int8: boolean): Promise<Float32Array> {
  const served = tinyGPT(3);
  if (int8) quantize(served);
  const bank = LoRABank.of(served);
  for (const [i, d] of [A1, A2].entries()) bank.add(`a${i + 1}`, readAdapter(d, served).layers, 4, 2);
  moveToBackend(served);
  const caches = PROMPTS.map(() => new KVCache(served.config, 1, 16));
  const chunks = PROMPTS.map((p) => Int32Array.from(p));
  // Two passes: the prompts, then one more token each (a decode step through the caches).
  const first = batchForwardOnDevice(served, chunks, caches, WHICH);
  await first.read();
  const second = batchForwardOnDevice(served, PROMPTS.map((_, s) => Int32Array.of(s + 10)), caches, WHICH);
  return Float32Array.from(await second.read());
}

describe('LoRA adapters served on webgpu', { skip }, () => {
  it('a batch mixing the base and two adapters scores as js (fp32 and int8 bases)', async () => {
    for (const int8 of [false, true]) {
      setBackend('js');
      const want = await mixedScores(int8);
      // The adapters change the scores (else this test could not fail): the same batch, all rows on the base.
      const base = tinyGPT(3);
      if (int8) quantize(base);
      const caches = PROMPTS.map(() => new KVCache(base.config, 1, 16));
      batchForward(base, PROMPTS.map((p) => Int32Array.from(p)), caches);
      const plain = batchForward(base, PROMPTS.map((_, s) => Int32Array.of(s + 10)), caches);
      assert.ok(plain.some((v, i) => Math.abs(v - want[i]!) > 1e-2), 'the adapters move the scores');
      await selectBackendAsync('webgpu');
      try {
        assertNear(await mixedScores(int8), want, 1e-4, 1e-4, `int8 ${int8}: scores with adapters`);
      } finally {
        setBackend('js');
      }
    }
  });

  it('attn serve --adapter on webgpu: each adapter\'s greedy text, alone and mixed in one batch', async () => {
    const tok = tinyTokenizer();
    const greedy = (dir: string | null, prompt: string) => {
      const m = tinyGPT(3);
      if (dir) loadAdapter(m, dir);
      return tok.decode([...generate(m.eval(), tok.encode(prompt), { maxNewTokens: 10, temperature: 0 })]);
    };
    setBackend('js');
    const prompts = ['Hello', 'The cat', 'abc'];
    const models = ['base', 'a1', 'a2'];
    const want = new Map<string, string>();
    for (const p of prompts) for (const [i, name] of models.entries()) want.set(`${name}|${p}`, greedy([null, A1, A2][i]!, p));
    assert.ok(prompts.some((p) => want.get(`a1|${p}`) !== want.get(`base|${p}`)) && prompts.some((p) => want.get(`a2|${p}`) !== want.get(`a1|${p}`)));
    await selectBackendAsync('webgpu');
    const server = await startTiny({ names: ['base'], adapters: [`a1=${A1}`, `a2@base=${A2}`], cache: null });
    try {
      const ask = async (model: string, prompt: string) => {
        const res = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model, prompt, max_tokens: 10, temperature: 0 }) });
        assert.equal(res.status, 200);
        return ((await res.json()) as { choices: Array<{ text: string }> }).choices[0]!.text;
      };
      for (const name of models) assert.equal(await ask(name, prompts[0]!), want.get(`${name}|${prompts[0]}`), `${name} alone`);
      let maxBatch = 0;
      const sched = server.context.models.get('base')!.scheduler;
      const timer = setInterval(() => (maxBatch = Math.max(maxBatch, sched.batchSize)), 1);
      const results = await Promise.all(prompts.flatMap((p) => models.map(async (name) => [name, p, await ask(name, p)] as const)));
      clearInterval(timer);
      for (const [name, p, text] of results) assert.equal(text, want.get(`${name}|${p}`), `${name} on ${JSON.stringify(p)} in the batch`);
      assert.ok(maxBatch > 1, `requests shared a batch (largest ${maxBatch})`);
    } finally {
      await server.close();
      setBackend('js');
    }
  });
});
