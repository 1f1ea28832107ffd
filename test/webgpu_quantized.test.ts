import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { jsBackend } from '../src/backend/js/index.js';
import { openedWebGpu } from '../src/backend/webgpu/index.js';
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
    // 3 blocks: 32 lanes an output, 8 outputs a workgroup; 72 blocks: 128 lanes (rowLanes).
    for (const [rows, K, N] of [[3, 96, 37], [2, 2304, 9]] as const) it(`${type}: ${rows} rows × ${K / 32} blocks, with a bias, a GELU and an addend, from offset views`, async () => {
      const w = quantizeMatrix(type, rand(N * K), N, K);
      const x = rand(rows * K);
      x[5] = 0.5; // a block holding exact halves once scaled is common in real activations; js and WGSL must round them alike
      const bias = rand(N);
      const addend = rand(rows * N);
      const want = new Float32Array(rows * N);
      jsBackend.linearQuantized(x, rows, w, bias, want, { activation: 'gelu', addend });
      const be = await webgpu();
      try {
        const dev = be.device!;
        const padded = new Float32Array(rows * K + 5);
        padded.set(x, 5);
        const out = dev.alloc(rows * N, true);
        be.linearQuantized(dev.view(dev.upload(padded), 5, rows * K), rows, w, dev.upload(bias), out, { activation: 'gelu', addend: dev.view(dev.upload(Float32Array.from([1, 2, ...addend])), 2, rows * N) });
        const got = await dev.read(out);
        // Within one activation quant step of js: WGSL's f32 division is not correctly rounded (see the kernel's header).
        const scale = Math.max(...want.map(Math.abs));
        assertNear(got, want, 1e-5, 2e-3 * scale, type);
      } finally {
        setBackend('js');
      }
    });
  }

  it('products of the same x quantize it once, and again once x is written', async () => {
    const [rows, K, N] = [2, 64, 24];
    const [w1, w2] = [quantizeMatrix('q8_0', rand(N * K), N, K), quantizeMatrix('q4_0', rand(N * K), N, K)];
    const [x1, x2] = [rand(rows * K), rand(rows * K)];
    const be = await webgpu();
    try {
      const dev = be.device!;
      const ctx = openedWebGpu()!;
      const x = dev.upload(x1);
      const [o1, o2, o3] = [dev.alloc(rows * N, true), dev.alloc(rows * N, true), dev.alloc(rows * N, true)];
      const d0 = ctx.stats.dispatches;
      be.linearQuantized(x, rows, w1, null, o1);
      be.linearQuantized(x, rows, w2, null, o2);
      assert.equal(ctx.stats.dispatches - d0, 3, 'one quantize and two products');
      dev.write(x, x2); // x changes: its quantized blocks are stale
      be.linearQuantized(x, rows, w1, null, o3);
      assert.equal(ctx.stats.dispatches - d0, 5, 'quantized again after the write');
      const check = async (o: typeof o1, w: typeof w1, xs: Float32Array, what: string) => {
        const want = new Float32Array(rows * N);
        jsBackend.linearQuantized(xs, rows, w, null, want);
        assertNear(await dev.read(o), want, 1e-5, 2e-3 * Math.max(...want.map(Math.abs)), what);
      };
      await check(o1, w1, x1, 'first product');
      await check(o2, w2, x1, 'second product, the same quantized x');
      await check(o3, w1, x2, 'after x was written');
    } finally {
      setBackend('js');
    }
  });

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
