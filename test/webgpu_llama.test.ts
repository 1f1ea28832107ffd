import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { RopeDims } from '../src/backend/backend.js';
import { jsBackend } from '../src/backend/js/index.js';
import { GpuContext, type GpuSpan, span } from '../src/backend/webgpu/device.js';
import { rope } from '../src/backend/webgpu/kernels/rope.js';
import { swigluBackward, swigluForward } from '../src/backend/webgpu/kernels/swiglu.js';
import { setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
import { openWebGpu } from '../src/backend/webgpu/index.js';
import { runReferenceCheck } from '../src/reference/check.js';
import { Rng } from '../src/util/rng.js';
import { hasShared, REFERENCE_DIR, referenceSkip, SHARED } from './helpers.js';
import { webgpuSkip } from './webgpu_helpers.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { backend } from '../src/backend/index.js';
import { runSample } from '../src/cli/sample.js';
import { BatchDecoder, type GenerateOptions } from '../src/generate/engine.js';
import type { Llama } from '../src/models/llama.js';
import { moveToBackend } from '../src/nn/placement.js';
import { chatTokenizerFiles, tinyLlama, writeHFLlamaDir } from './llama_fixture.js';
import { sameStep } from './webgpu_helpers.js';

/*
 * What the Llama family adds on webgpu — SwiGLU and RoPE kernels, each
 * against its js twin; a tiny grouped-query Llama's training step (loss and
 * every gradient) and its KV-cached decoding against js; `attn sample
 * --backend webgpu` on a Llama directory — and the PyTorch reference checks
 * of gpt2-tiny and llama-tiny run on webgpu (SwiftShader without a GPU; see
 * webgpu_helpers.ts for the skip rules).
 */

const skip = await webgpuSkip('webgpu Llama tests');
const ctx = skip ? null : (await openWebGpu()).ctx;
after(() => setBackend('js'));

const rng = new Rng(5);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

/** `data` on the GPU from element 3 of its buffer (an offset the kernels must honour). */
function up(data: Float32Array): GpuSpan {
  const padded = new Float32Array(data.length + 4);
  padded.set(data, 3);
  return span(ctx!.upload(padded), 3, data.length);
}
const down = (s: GpuSpan) => ctx!.read(s.buffer, s.offset, s.length);

function near(got: Float32Array, want: Float32Array, tol: number, what: string): void {
  assert.equal(got.length, want.length, what);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (1 + Math.abs(want[i]!)));
  assert.ok(worst <= tol, `${what}: worst ${worst}`);
}

describe('webgpu Llama kernels against js', { skip }, () => {
  it('swiglu forward and backward (accumulating and not, one gradient skipped)', async () => {
    const n = 1000;
    const [g, u, dy, dg0, du0] = [rand(n), rand(n), rand(n), rand(n), rand(n)];
    const out = new Float32Array(n);
    jsBackend.swigluForward(g, u, out);
    const gOut = up(new Float32Array(n));
    swigluForward(ctx!, up(g), up(u), gOut);
    near(await down(gOut), out, 1e-5, 'forward');
    for (const [accGate, accUp] of [[true, false], [false, true]] as const) {
      const [dg, du] = [dg0.slice(), du0.slice()];
      jsBackend.swigluBackward(g, u, dy, dg, du, accGate, accUp);
      const [gdg, gdu] = [up(dg0), up(du0)];
      swigluBackward(ctx!, up(g), up(u), up(dy), gdg, gdu, accGate, accUp);
      near(await down(gdg), dg, 1e-5, `dGate acc=${accGate}`);
      near(await down(gdu), du, 1e-5, `dUp acc=${accUp}`);
    }
    const du = new Float32Array(n);
    jsBackend.swigluBackward(g, u, dy, null, du, false, false);
    const gdu = up(new Float32Array(n));
    swigluBackward(ctx!, up(g), up(u), up(dy), null, gdu, false, false);
    near(await down(gdu), du, 1e-5, 'dUp alone');
  });

  it('rope in both layouts, shared and per-row positions, forward and the accumulating inverse', async () => {
    for (const layout of ['interleaved', 'half'] as const) {
      for (const perRow of [false, true]) {
        const d: RopeDims = { B: 2, T: 5, nHead: 3, headDim: 6, layout };
        const angles = (perRow ? d.B * d.T : d.T) * (d.headDim / 2);
        const cos = rand(angles);
        const sin = rand(angles);
        const x = rand(d.B * d.T * d.nHead * d.headDim);
        const base = rand(x.length);
        for (const [dir, acc] of [[1, false], [-1, true]] as const) {
          const want = base.slice();
          jsBackend.rope(x, want, cos, sin, d, dir, acc);
          const out = up(base);
          rope(ctx!, up(x), out, cos, sin, d, dir, acc);
          near(await down(out), want, 1e-5, `${layout} perRow=${perRow} dir=${dir}`);
        }
      }
    }
  });
});

/** 4 query heads sharing 2 key/value heads, an untied head (so greedy tokens do not just repeat the prompt's last). */
const llama = () => tinyLlama({ n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, head_dim: 8, intermediate_size: 48, vocab_size: 41, block_size: 16, tie_word_embeddings: false }, 13);
/** Two prompts of different lengths (the shorter is left-padded); 7 + 12 tokens overflow the 16-slot context, so the window slides. */
const PROMPTS = [[3, 1, 4], [1, 5, 9, 2, 6, 5, 3]];

/** Every row's tokens from stepAsync (what streamText and the server call), and the sizes of the device's reads. */
async function decode(gpu: boolean, opts: GenerateOptions): Promise<{ tokens: number[][]; reads: number[] }> {
  if (gpu) await selectBackendAsync('webgpu');
  else setBackend('js');
  const m: Llama = llama();
  const reads: number[] = [];
  const device = backend().device;
  const read = device?.read;
  if (device) {
    moveToBackend(m);
    device.read = (s) => (reads.push(s.length), read!.call(device, s));
  }
  try {
    const dec = new BatchDecoder(m, PROMPTS, opts);
    const tokens: number[][] = PROMPTS.map(() => []);
    while (!dec.finished) (await dec.stepAsync()).forEach((id, b) => id !== null && tokens[b]!.push(id));
    return { tokens, reads };
  } finally {
    if (device) device.read = read!;
    setBackend('js');
  }
}

describe('a tiny grouped-query Llama on webgpu against js', { skip }, () => {
  it('one training step: the loss (rtol 1e-4) and every gradient (rtol 1e-3) as js', async () => {
    const [B, T] = [2, 6];
    const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 7 + 2) % 41);
    const targets = Int32Array.from({ length: B * T }, (_, i) => (i % 5 === 4 ? -1 : (i * 3 + 1) % 41));
    await sameStep(() => llama().train(), (m) => (m as Llama).forward(ids, [B, T], targets).loss!, 'Llama');
  });

  it('KV-cached greedy decoding: the same tokens as js, each step reading back one number per row', async () => {
    const js = await decode(false, { maxNewTokens: 12, greedy: true });
    const gpu = await decode(true, { maxNewTokens: 12, greedy: true });
    assert.deepEqual(gpu.tokens, js.tokens);
    assert.ok(new Set(js.tokens.flat()).size > 2, `a test that can tell: ${JSON.stringify(js.tokens)}`);
    assert.ok(gpu.reads.length >= 12 && gpu.reads.every((n) => n === PROMPTS.length), `reads of ${gpu.reads.join(', ')} floats`);
  });

  it('KV-cached sampling with a seed: the same tokens as js (the last scores rows read back)', async () => {
    const opts = { maxNewTokens: 8, temperature: 0.9, topK: 12, seed: 7 };
    const js = await decode(false, opts);
    const gpu = await decode(true, opts);
    assert.deepEqual(gpu.tokens, js.tokens);
    assert.ok(gpu.reads.every((n) => n === PROMPTS.length * 41), `reads of ${gpu.reads.join(', ')} floats`);
  });

  it('attn sample --backend webgpu on a Llama directory: the greedy text js gives', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-webgpu-llama-'));
    try {
      writeHFLlamaDir(dir, tinyLlama({ n_layer: 1, n_head: 4, n_kv_head: 2, n_embd: 32, head_dim: 8, intermediate_size: 48, block_size: 64, tie_word_embeddings: false }, 17), chatTokenizerFiles());
      const sample = async (backendName: string) => {
        let out = '';
        await runSample({ model: dir, prompt: 'Hello', maxNewTokens: 12, greedy: true, temperature: 0, seed: 1, backend: backendName }, (s) => (out += s));
        setBackend('js');
        return out;
      };
      const js = await sample('js');
      assert.ok(js.length > 'Hello'.length, js);
      assert.equal(await sample('webgpu'), js);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const LLAMA_DIR = join(SHARED, 'reference', 'llama-tiny');
const missing = [REFERENCE_DIR, LLAMA_DIR].find((d) => !hasShared(d));
const refSkip = skip || referenceSkip(missing ? `${missing} is missing` : false);

describe('the PyTorch reference checks on webgpu', { skip: refSkip }, () => {
  for (const dir of [REFERENCE_DIR, LLAMA_DIR]) {
    it(`passes for ${dir.split('/').at(-1)}`, async () => {
      await selectBackendAsync('webgpu');
      try {
        const report = await runReferenceCheck(dir);
        assert.ok(report.pass, JSON.stringify(report.groups));
      } finally {
        setBackend('js');
      }
    });
  }
});
