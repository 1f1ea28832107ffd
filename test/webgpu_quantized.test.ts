import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { jsBackend } from '../src/backend/js/index.js';
import { quantizeMatrix } from '../src/backend/quantized_matrix.js';
import { BatchDecoder } from '../src/generate/engine.js';
import type { Llama } from '../src/models/llama.js';
import { quantizeMatrices, useQuantizedMatrices } from '../src/nn/block_quantized.js';
import { moveToBackend } from '../src/nn/placement.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { tinyLlama } from './llama_fixture.js';
import { assertNear, webgpu, webgpuSkip } from './webgpu_helpers.js';

/*
 * GGUF's q8_0 and q4_0 block formats on webgpu (kernels/linear_quantized.ts)
 * against js/quantized.ts: the product on its own (an offset input view, a
 * bias), then greedy KV-cached decoding of a tiny grouped-query Llama whose
 * matrices are block-quantized as a GGUF file holds them. The k-quants are
 * refused in one line. SwiftShader without a GPU; skips as
 * webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('webgpu quantized tests');
after(() => setBackend('js'));

const rng = new Rng(41);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

describe('linearQuantized on webgpu against js', { skip }, () => {
  for (const type of ['q8_0', 'q4_0'] as const) {
    it(`${type}: rows × blocks, with a bias, from an offset view`, async () => {
      const [rows, K, N] = [3, 96, 37];
      const w = quantizeMatrix(type, rand(N * K), N, K);
      const x = rand(rows * K);
      x[5] = 0.5; // a block holding exact halves once scaled is common in real activations; js and WGSL must round them alike
      const bias = rand(N);
      const want = new Float32Array(rows * N);
      jsBackend.linearQuantized(x, rows, w, bias, want);
      const be = await webgpu();
      try {
        const dev = be.device!;
        const padded = new Float32Array(rows * K + 5);
        padded.set(x, 5);
        const out = dev.alloc(rows * N, true);
        be.linearQuantized(dev.view(dev.upload(padded), 5, rows * K), rows, w, dev.upload(bias), out);
        const got = await dev.read(out);
        // Within one activation quant step of js: WGSL's f32 division is not correctly rounded (see the kernel's header).
        const scale = Math.max(...want.map(Math.abs));
        assertNear(got, want, 1e-5, 2e-3 * scale, type);
      } finally {
        setBackend('js');
      }
    });
  }

  it('q4_k is refused in one line naming what runs', async () => {
    // The kernel is never reached: any q4_k bytes do (a row of 256 values is one 144-byte block).
    const w = { type: 'q4_k' as const, rows: 2, cols: 256, data: new Uint8Array(2 * 144) };
    const be = await webgpu();
    try {
      const dev = be.device!;
      assert.throws(
        () => be.linearQuantized(dev.upload(rand(256)), 1, w, null, dev.alloc(2, true)),
        (e: unknown) => e instanceof UserError && /not supported on webgpu: linearQuantized of q4_k blocks \(q8_0 and q4_0 run on webgpu\)/.test(e.message),
      );
    } finally {
      setBackend('js');
    }
  });
});

/** Greedy tokens of a tiny GQA Llama with its matrices in `type` blocks, on js or webgpu. */
async function greedy(type: 'q8_0' | 'q4_0', gpu: boolean): Promise<number[][]> {
  if (gpu) await webgpu();
  else setBackend('js');
  try {
    const m: Llama = tinyLlama({ n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, head_dim: 8, intermediate_size: 64, vocab_size: 41, block_size: 32, tie_word_embeddings: false }, 23);
    useQuantizedMatrices(m, quantizeMatrices(m, type));
    moveToBackend(m);
    const prompts = [[3, 1, 4], [1, 5, 9, 2, 6]];
    const dec = new BatchDecoder(m, prompts, { maxNewTokens: 8, greedy: true });
    const out: number[][] = prompts.map(() => []);
    while (!dec.finished) (await dec.stepAsync()).forEach((id, b) => id !== null && out[b]!.push(id));
    return out;
  } finally {
    setBackend('js');
  }
}

describe('a block-quantized (GGUF-style) Llama decoding on webgpu', { skip }, () => {
  for (const type of ['q8_0', 'q4_0'] as const) {
    it(`${type}: greedy KV-cached tokens as js`, async () => {
      const js = await greedy(type, false);
      assert.deepEqual(await greedy(type, true), js);
      assert.ok(new Set(js.flat()).size > 2, `a test that can tell: ${JSON.stringify(js)}`);
    });
  }
});
