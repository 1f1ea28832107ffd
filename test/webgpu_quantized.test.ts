import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { jsBackend } from '../src/backend/js/index.js';
import { openedWebGpu } from '../src/backend/webgpu/index.js';
import { QUANT_BLOCKS, quantizeMatrix, type QuantizedMatrix } from '../src/backend/quantized_matrix.js';
import { BatchDecoder } from '../src/generate/engine.js';
import type { Llama } from '../src/models/llama.js';
import type { LlamaConfigInput } from '../src/models/llama_config.js';
import { quantizeMatrices, useQuantizedMatrices } from '../src/nn/block_quantized.js';
import { moveToBackend } from '../src/nn/placement.js';
import { Rng } from '../src/util/rng.js';
import { tinyLlama } from './llama_fixture.js';
import { assertNear, webgpu, webgpuSkip } from './webgpu_helpers.js';

/*
 * GGUF's block formats on webgpu against js/quantized.ts: q8_0 and q4_0
 * (kernels/linear_quantized.ts), q4_k and q6_k (kernels/linear_kquant.ts).
 * The product on its own (an offset input view, a bias), a k-quant table's
 * rows looked up by ids on the device, then greedy KV-cached decoding of a
 * tiny grouped-query Llama whose matrices are block-quantized as a GGUF file
 * holds them (Q4_K_M's mix of q4_k and q6_k among them). SwiftShader without
 * a GPU; skips as webgpu_helpers.ts says.
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
      const { got, want } = await productBothWays(w, x, rows);
      // Within one activation quant step of js: WGSL's f32 division is not correctly rounded (see the kernel's header).
      assertNear(got, want, 1e-5, 2e-3 * Math.max(...want.map(Math.abs)), type);
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

  for (const type of ['q4_k', 'q6_k'] as const) {
    // 8 runs of 32 values: 32 lanes an output; 72 runs: 128 lanes.
    for (const [rows, K, N] of [[3, 256, 37], [2, 2304, 9]] as const) it(`${type}: ${rows} rows × ${K / 256} blocks, with a bias, a GELU and an addend, from offset views`, async () => {
      const { got, want } = await productBothWays(kQuantMatrix(type, N, K), rand(rows * K), rows);
      // The weights dequantize as js's do; the sum runs in another order (f32 lanes and a tree, against js's one double sum).
      assertNear(got, want, 1e-4, 1e-5 * K, type);
    });

    it(`${type}: token rows looked up by ids on the device, dequantized as js (bit for bit)`, async () => {
      const table = kQuantMatrix(type, 7, 512);
      const ids = Float32Array.of(6, 0, 3);
      const want = new Float32Array(3 * 512);
      jsBackend.embeddingQuantizedStored(table, ids, 3, want);
      const be = await webgpu();
      try {
        const dev = be.device!;
        const out = dev.alloc(3 * 512, true);
        be.embeddingQuantizedStored(table, dev.view(dev.upload(Float32Array.of(9, ...ids)), 1, 3), 3, out);
        assert.deepEqual(await dev.read(out), want);
      } finally {
        setBackend('js');
      }
    });
  }
});

/** x·Wᵀ + bias, GELU, + addend on js and on webgpu (the input, bias and addend uploaded as offset views). */
async function productBothWays(w: QuantizedMatrix, x: Float32Array, rows: number): Promise<{ got: Float32Array; want: Float32Array }> {
  const [N, K] = [w.rows, w.cols];
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
    return { got: await dev.read(out), want };
  } finally {
    setBackend('js');
  }
}

/**
 * An N × K matrix of random k-quant blocks whose scales keep the weights
 * near ±0.1 (random bytes would make f16 scales of any size, NaN included):
 * q4_k's d and dmin, q6_k's d and its sixteen int8 scales set, every quant random.
 */
function kQuantMatrix(type: 'q4_k' | 'q6_k', N: number, K: number): QuantizedMatrix {
  const { bytes } = QUANT_BLOCKS[type];
  const data = Uint8Array.from({ length: (N * K * bytes) / 256 }, () => rng.int(256));
  const f16 = (at: number, bits: number) => ((data[at] = bits & 0xff), (data[at + 1] = bits >> 8));
  for (let at = 0; at < data.length; at += bytes) {
    if (type === 'q4_k') {
      f16(at, 0x1000 + rng.int(0x400)); // d ≈ 0.0005 … 0.001
      f16(at + 2, 0x1000 + rng.int(0x400)); // dmin
    } else {
      for (let j = 0; j < 16; j++) data[at + 192 + j] = (rng.int(17) - 8) & 0xff; // scales −8 … 8
      f16(at + 208, 0x1400 + rng.int(0x400)); // d ≈ 0.001 … 0.002
    }
  }
  return { type, rows: N, cols: K, data };
}

/** Greedy tokens of a tiny GQA Llama with its matrices in `type` blocks (or the given ones), on js or webgpu. */
async function greedy(type: 'q8_0' | 'q4_0' | Map<string, QuantizedMatrix>, gpu: boolean, shape: Partial<LlamaConfigInput> = {}): Promise<number[][]> {
  if (gpu) await webgpu();
  else setBackend('js');
  try {
    const m: Llama = tinyLlama({ n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, head_dim: 8, intermediate_size: 64, vocab_size: 41, block_size: 32, tie_word_embeddings: false, ...shape }, 23);
    useQuantizedMatrices(m, typeof type === 'string' ? quantizeMatrices(m, type) : type);
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

  for (const tied of [false, true]) {
    it(`Q4_K_M's mix (q4_k matrices; v_proj, down_proj and the token table q6_k, ${tied ? 'the head tied to it' : 'and the head'}): greedy KV-cached tokens as js, queued ahead (the table read on the device)`, async () => {
      // Widths of 256: a k-quant row is whole 256-value blocks.
      const shape = { n_embd: 256, head_dim: 64, intermediate_size: 256, tie_word_embeddings: tied };
      const model = tinyLlama({ n_layer: 2, n_head: 4, n_kv_head: 2, vocab_size: 41, block_size: 32, ...shape }, 23);
      const matrices = new Map<string, QuantizedMatrix>();
      for (const [name, p] of model.namedParameters()) {
        if (p.rank !== 2) continue;
        const type = /v_proj|down_proj|embed_tokens|lm_head/.test(name) ? 'q6_k' : 'q4_k';
        matrices.set(name, kQuantMatrix(type, p.shape[0]!, p.shape[1]!));
      }
      const js = await greedy(matrices, false, shape);
      assert.deepEqual(await greedy(matrices, true, shape), js);
      assert.ok(new Set(js.flat()).size > 2, `a test that can tell: ${JSON.stringify(js)}`);
    });
  }
});
