import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { backend, setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
import { openedWebGpu } from '../src/backend/webgpu/index.js';
import { setFoldRows } from '../src/backend/webgpu/kernels/input_fold.js';
import { logitsCached } from '../src/generate/cached_forward.js';
import { BatchDecoder, type GenerateOptions } from '../src/generate/engine.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { moveToBackend } from '../src/nn/placement.js';
import { quantize } from '../src/nn/quantized_linear.js';
import { Rng } from '../src/util/rng.js';
import { webgpuSkip } from './webgpu_helpers.js';

/*
 * KV-cached generation on the webgpu backend against js: the same model,
 * prompts and seed must give the same tokens — greedy (argmax on the device,
 * 4 bytes read per row and step) and sampled (the scores row read back, drawn
 * on the host with js's generators). Without a GPU, run on SwiftShader
 * (VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json); with no
 * adapter the tests skip, unless ATTN_REQUIRE_WEBGPU=1 (CI), where they fail.
 */

const skip = await webgpuSkip('WebGPU generation tests');
after(() => setBackend('js'));

const CONFIG = parseGPTConfig({ n_layer: 2, n_head: 4, n_embd: 32, block_size: 16, vocab_size: 41, bias: true, dropout: 0 });
/** Two prompts of different lengths (the shorter is left-padded); 7 + 12 tokens overflow the 16-slot context, so the window slides. */
const PROMPTS = [[3, 1, 4], [1, 5, 9, 2, 6, 5, 3]];

function model(int8 = false): GPT {
  const m = new GPT(CONFIG, new Rng(11)).eval();
  if (int8) quantize(m);
  return m;
}

/** Every row's generated tokens, stepping with stepAsync (what streamText and the server call). */
async function decodeAll(m: GPT, opts: GenerateOptions): Promise<number[][]> {
  const dec = new BatchDecoder(m, PROMPTS, opts);
  const out: number[][] = PROMPTS.map(() => []);
  while (!dec.finished) (await dec.stepAsync()).forEach((id, b) => id !== null && out[b]!.push(id));
  return out;
}

/** The tokens on js, then on webgpu (a fresh copy of the model moved to the device), with the sizes of the device's reads. */
async function bothBackends(opts: GenerateOptions, int8 = false): Promise<{ js: number[][]; gpu: number[][]; reads: number[] }> {
  setBackend('js');
  const js = await decodeAll(model(int8), opts);
  await selectBackendAsync('webgpu');
  try {
    const m = model(int8);
    moveToBackend(m);
    const device = backend().device!;
    const read = device.read.bind(device);
    const reads: number[] = [];
    device.read = (s) => {
      reads.push(s.length);
      return read(s);
    };
    try {
      return { js, gpu: await decodeAll(m, opts), reads };
    } finally {
      device.read = read;
    }
  } finally {
    setBackend('js');
  }
}

describe('generation on webgpu', { skip }, () => {
  it('greedy: the same tokens as js, each step reading back one number per row', async () => {
    const { js, gpu, reads } = await bothBackends({ maxNewTokens: 12, greedy: true });
    assert.deepEqual(gpu, js);
    assert.ok(reads.length >= 12, `${reads.length} reads`);
    assert.ok(reads.every((n) => n === PROMPTS.length), `reads of ${reads.join(', ')} floats; want ${PROMPTS.length} (the argmax of each row)`);
  });

  it('sampled with a seed (temperature, top-k, top-p): the same tokens as js, reading back only the last scores rows', async () => {
    const { js, gpu, reads } = await bothBackends({ maxNewTokens: 12, temperature: 0.9, topK: 12, topP: 0.95, seed: 7 });
    assert.deepEqual(gpu, js);
    assert.ok(reads.every((n) => n === PROMPTS.length * CONFIG.vocab_size), `reads of ${reads.join(', ')} floats`);
  });

  it('an int8-quantized model (attn quantize): greedy tokens as js', async () => {
    const { js, gpu } = await bothBackends({ maxNewTokens: 4, greedy: true }, true);
    assert.deepEqual(gpu, js);
  });

  it('a decode token records 5 dispatches per block: the norms are folded into the products after them, the GELU and both residual additions stored by the products', async () => {
    await selectBackendAsync('webgpu');
    try {
      const perToken = (layers: number): { dispatches: number; deferred: number; run: number } => {
        const m = new GPT(parseGPTConfig({ ...CONFIG, n_layer: layers }), new Rng(3)).eval();
        moveToBackend(m);
        const cache = new KVCache(m.config, 1, 8);
        logitsCached(m, Int32Array.of(1), [1, 1], cache);
        const before = { ...openedWebGpu()!.stats };
        logitsCached(m, Int32Array.of(2), [1, 1], cache);
        const after = openedWebGpu()!.stats;
        return { dispatches: after.dispatches - before.dispatches, deferred: after.deferred - before.deferred, run: after.deferredRun - before.deferredRun };
      };
      // q·k·v (ln_1 folded in), cached attention, output projection (+ x), up projection (ln_2 folded in, GELU), down projection (+ x).
      const [one, three] = [perToken(1), perToken(3)];
      assert.equal((three.dispatches - one.dispatches) / 2, 5);
      // Every norm of the token (two a block and ln_f) was deferred, and none had to be recorded after all.
      assert.deepEqual([one.deferred, three.deferred, one.run, three.run], [3, 7, 0, 0]);
      // Unfolded: each norm is a dispatch of its own.
      setFoldRows(0);
      try {
        assert.equal((perToken(3).dispatches - perToken(1).dispatches) / 2, 7);
      } finally {
        setFoldRows(null);
      }
    } finally {
      setBackend('js');
    }
  });

  it('without the cache (the reference path): greedy tokens as js', async () => {
    const { js, gpu } = await bothBackends({ maxNewTokens: 5, greedy: true, cache: false });
    assert.deepEqual(gpu, js);
  });
});
