import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { backend, setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
import { openedWebGpu } from '../src/backend/webgpu/index.js';
import { setFoldRows } from '../src/backend/webgpu/kernels/input_fold.js';
import { logitsCached } from '../src/generate/cached_forward.js';
import { decodeAhead, setDecodeAhead } from '../src/generate/decode_ahead.js';
import { BatchDecoder, type GenerateOptions } from '../src/generate/engine.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { moveToBackend } from '../src/nn/placement.js';
import { quantize } from '../src/nn/quantized_linear.js';
import { Rng } from '../src/util/rng.js';
import { mostReadsInFlight, webgpuSkip } from './webgpu_helpers.js';

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

/**
 * The test model: seed 3, its matrices scaled 4× so that greedy decoding
 * wanders (at the usual init, a 2-layer model repeats one token, and a
 * mistake in which token is fed back could go unseen).
 */
function model(int8 = false): GPT {
  const m = new GPT(CONFIG, new Rng(3)).eval();
  for (const p of m.parameters()) if (p.shape.length === 2) for (let i = 0; i < p.data.length; i++) p.data[i]! *= 4;
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
    assert.ok(new Set(js.flat()).size > 4, `a test that can tell: ${JSON.stringify(js)}`);
    assert.ok(reads.length >= 12, `${reads.length} reads`);
    assert.ok(reads.every((n) => n === PROMPTS.length), `reads of ${reads.join(', ')} floats; want ${PROMPTS.length} (the argmax of each row)`);
  });

  it('greedy queued 0, 1, 2 and 4 steps ahead of the reads: the same tokens as js at every depth, with the window sliding, stop tokens, and a row ended by finish()', async () => {
    const plain = await bothBackends({ maxNewTokens: 12, greedy: true });
    const stopAt = plain.js[0]![5]!; // row 0 stops before its sixth token
    const cases: Array<{ opts: GenerateOptions; finishRow1After?: number }> = [
      { opts: { maxNewTokens: 12, greedy: true } },
      { opts: { maxNewTokens: 12, greedy: true, stopTokens: [stopAt] } },
      { opts: { maxNewTokens: 12, greedy: true }, finishRow1After: 3 },
      { opts: { maxNewTokens: 1, greedy: true } },
    ];
    const was = decodeAhead();
    try {
      for (const { opts, finishRow1After } of cases) {
        const run = async (gpu: boolean, depth: number) => {
          setBackend('js');
          const m = model();
          if (gpu) {
            await selectBackendAsync('webgpu');
            moveToBackend(m);
          }
          setDecodeAhead(depth);
          try {
            const dec = new BatchDecoder(m, PROMPTS, opts);
            const out: number[][] = PROMPTS.map(() => []);
            while (!dec.finished) {
              (await dec.stepAsync()).forEach((id, b) => id !== null && out[b]!.push(id));
              if (finishRow1After !== undefined && out[1]!.length === finishRow1After) dec.finish(1);
            }
            return out;
          } finally {
            setBackend('js');
          }
        };
        const js = await run(false, 0);
        for (const depth of [0, 1, 2, 4]) assert.deepEqual(await run(true, depth), js, `depth ${depth}, ${JSON.stringify(opts)}${finishRow1After ? ', row 1 finished' : ''}`);
        if (opts.stopTokens) assert.ok(js[0]!.length === 5 && js[1]!.length > 5, `a test that can tell: ${JSON.stringify(js)}`);
        if (opts.maxNewTokens > 4) assert.ok(new Set(js.flat()).size > 4, `a test that can tell: ${JSON.stringify(js)}`);
      }
    } finally {
      setDecodeAhead(was);
    }
  });

  it('queued ahead, the reads overlap: with depth d, d + 1 reads are in flight at once; with 0, one at a time', async () => {
    const was = decodeAhead();
    await selectBackendAsync('webgpu');
    try {
      const m = model();
      moveToBackend(m);
      for (const depth of [0, 2]) {
        setDecodeAhead(depth);
        const most = await mostReadsInFlight(async () => {
          // One prompt short enough that the window never slides within 10 tokens.
          const dec = new BatchDecoder(m, [[2, 7]], { maxNewTokens: 10, greedy: true });
          while (!dec.finished) await dec.stepAsync();
        });
        assert.equal(most, depth + 1, `depth ${depth}`);
      }
    } finally {
      setDecodeAhead(was);
      setBackend('js');
    }
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
