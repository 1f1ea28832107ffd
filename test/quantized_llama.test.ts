import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { backend, registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { dequantizeMatrix } from '../src/backend/quantized_matrix.js';
import { generateBatch } from '../src/generate/engine.js';
import { LLAMA_BENCH_SHAPES, runLlamaWorker, streamBandwidth, weightBytesPerToken, writeLlamaBenchFiles } from '../src/bench/llama.js';
import { measureStreamRead } from '../src/bench/stream_read.js';
import { gpt2ToGGUF } from '../src/io/gguf_gpt2.js';
import { llamaToGGUF } from '../src/io/gguf_llama.js';
import { writeGGUF } from '../src/io/gguf_write.js';
import { loadModel } from '../src/io/model_dir.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Llama } from '../src/models/llama.js';
import { parseLlamaConfig, type LlamaConfigInput } from '../src/models/llama_config.js';
import { BlockQuantizedLinear, QuantizedEmbedding, quantizeMatrices, useQuantizedMatrices } from '../src/nn/block_quantized.js';
import { Embedding } from '../src/nn/embedding.js';
import { Linear } from '../src/nn/linear.js';
import { dequantize, isQuantized } from '../src/nn/quantized_linear.js';
import { TiedLinear } from '../src/nn/tied_linear.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Rng } from '../src/util/rng.js';

// Every matrix's rows are whole 32-value blocks: 64 wide, 2 × 16 key/value dims, SwiGLU 96.
const config = (over: Partial<LlamaConfigInput> = {}) =>
  parseLlamaConfig({ n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 64, head_dim: 16, intermediate_size: 96, vocab_size: 40, block_size: 32, rms_norm_eps: 1e-5, ...over });

/** A Llama whose matrices are kept quantized, and its fp32 twin holding the same (dequantized) values. */
function twins(type: 'q8_0' | 'q4_0', tied: boolean): { q: Llama; f: Llama } {
  const c = config({ tie_word_embeddings: tied, attention_bias: true });
  const q = new Llama(c, new Rng(4));
  const f = new Llama(c, new Rng(4));
  const matrices = quantizeMatrices(q, type);
  const params = new Map(f.namedParameters());
  for (const [name, m] of matrices) params.get(name)!.data.set(dequantizeMatrix(m));
  useQuantizedMatrices(q, matrices);
  return { q, f };
}

const ids = Int32Array.from({ length: 12 }, (_, i) => (i * 7 + 3) % 40);
const logits = (m: Llama | GPT, x = ids) => noGrad(() => m.forward(x, [1, x.length]).logits).data;
/** Largest difference relative to the largest |logit|. */
function relErr(a: Float32Array, b: Float32Array): number {
  let d = 0;
  let s = 0;
  for (let i = 0; i < a.length; i++) { d = Math.max(d, Math.abs(a[i]! - b[i]!)); s = Math.max(s, Math.abs(b[i]!)); }
  return d / s;
}

const addon = loadAddon();
const native = addon ? createNativeBackend(addon) : null;
if (native) registerBackend(native);
const backends = ['js', ...(native ? [native.name] : [])];
after(() => setBackend('js'));

describe('a Llama with GGUF block-quantized matrices kept as stored', () => {
  for (const type of ['q8_0', 'q4_0'] as const) {
    for (const tied of [true, false]) {
      it(`${type}, ${tied ? 'tied' : 'untied'} head: no fp32 matrix left; logits match the dequantized fp32 model on ${backends.join(' and ')}`, () => {
        const { q, f } = twins(type, tied);
        // Only the RMSNorm weights and the q/k/v biases remain fp32 parameters.
        for (const [name, p] of q.namedParameters()) assert.equal(p.shape.length, 1, `${name} is still an fp32 matrix`);
        assert.ok(q.model.embed_tokens instanceof QuantizedEmbedding);
        assert.ok(q.lm_head instanceof BlockQuantizedLinear && (q.lm_head.tiedHead !== null) === tied);
        if (tied) assert.equal(q.lm_head.matrix, (q.model.embed_tokens as unknown as QuantizedEmbedding).matrix, 'one copy serves lookup and head');
        assert.ok(isQuantized(q));
        const results: Float32Array[] = [];
        for (const name of backends) {
          setBackend(name);
          const got = logits(q);
          // The quantized path also rounds activations to 8-bit blocks (as llama.cpp does): ~1 % of the logits' range.
          const err = relErr(got, logits(f));
          assert.ok(err < 0.03, `${name}: quantized vs dequantized fp32 logits differ by ${err.toExponential(2)} of their range`);
          results.push(got);
        }
        setBackend('js');
        // Each product agrees to ~1e-7 (test/quantized.test.ts); through the model, an activation that the
        // other backend's fp32 ops leave a last bit away from a rounding boundary can round to the next
        // 8-bit step, so whole-model logits agree to the activation quantization's scale, not to 1e-7.
        if (results.length === 2) assert.ok(relErr(results[1]!, results[0]!) < 0.02, `native vs js: ${relErr(results[1]!, results[0]!)}`);
      });
    }
  }

  it('KV-cached greedy decoding with quantized matrices equals the uncached one (js and native)', () => {
    const { q } = twins('q4_0', true);
    for (const name of backends) {
      setBackend(name);
      const run = (cache: boolean) => [...generateBatch(q, [[1, 2, 3, 4, 5], [7, 3]], { maxNewTokens: 6, greedy: true, cache })];
      assert.deepEqual(run(true), run(false), name);
    }
    setBackend('js');
  });

  it('dequantize gives fp32 layers back (tied head re-tied), computing exactly what the fp32 twin does', () => {
    const { q, f } = twins('q8_0', true);
    dequantize(q);
    assert.ok(q.model.embed_tokens instanceof Embedding);
    assert.ok(q.lm_head instanceof TiedLinear && q.lm_head.weight === q.model.embed_tokens.weight);
    assert.ok(q.model.layers[0]!.self_attn.q_proj instanceof Linear);
    assert.ok(!isQuantized(q));
    assert.deepEqual(logits(q), logits(f));
  });

  it('refuses a matrix of the wrong shape or with no layer to hold it', () => {
    const m = new Llama(config(), new Rng(1));
    const qm = quantizeMatrices(m, 'q8_0');
    const k = qm.get('model.layers.0.self_attn.k_proj.weight')!;
    assert.throws(() => useQuantizedMatrices(m, new Map([['model.layers.0.self_attn.q_proj.weight', k]])), /quantized matrix \[32, 64\] for a layer of \[64,64\]/);
    assert.throws(() => useQuantizedMatrices(m, new Map([['model.layers.9.mlp.up_proj.weight', k]])), /no Linear, Embedding or tied head holds model\.layers\.9/);
  });
});

describe('a quantized GGUF GPT loads without fp32 copies of its matrices', () => {
  const dir = mkdtempSync(join(tmpdir(), 'attn-qgguf-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const type of ['q8_0', 'q4_0'] as const) {
    it(`${type}: layers hold the file's blocks; logits match the dequantized model; dequantize restores Linears`, () => {
      const gpt = new GPT(parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 64, block_size: 32, vocab_size: 50, bias: true }), new Rng(2));
      const path = join(dir, `${type}.gguf`);
      const { metadata, tensors } = gpt2ToGGUF(gpt, null, type);
      writeGGUF(path, metadata, tensors);
      const loaded = loadModel(path);
      const m = loaded.model as GPT;
      assert.ok(m.wte instanceof QuantizedEmbedding && m.lm_head instanceof BlockQuantizedLinear && m.lm_head.tiedHead);
      assert.ok(m.h[0]!.attn.c_attn instanceof BlockQuantizedLinear);
      // fp32 left: position vectors (the file keeps them F32), LayerNorms and biases.
      const fp32 = m.namedParameters().reduce((n, [, p]) => n + p.data.byteLength, 0);
      assert.ok(fp32 <= (32 * 64 + 2 * 10 * 64 + 2 * 64 + 2 * 4 * 64) * 4 + 1, `${fp32} bytes of fp32 parameters`);
      const q = logits(m, ids);
      dequantize(m);
      assert.ok(m.wte instanceof Embedding && m.lm_head instanceof TiedLinear && m.h[0]!.attn.c_attn instanceof Linear);
      const err = relErr(q, logits(m, ids));
      assert.ok(err < 0.03, `quantized vs dequantized: ${err}`);
      assert.equal(backend().name, 'js');
    });
  }
});

describe('attn bench --workloads llama (pieces)', () => {
  it('weight bytes per decoded token count every matrix once, the untied embedding not at all', () => {
    // SmolLM2-135M (tied): 30 × (576·576·2 + 576·192·2 + 3·576·1536) + 49152·576 = 134.5M values.
    assert.equal(weightBytesPerToken(LLAMA_BENCH_SHAPES['smollm2-135m']!, 'f32'), (30 * (576 * 576 * 2 + 576 * 192 * 2 + 3 * 576 * 1536) + 49152 * 576) * 4);
    assert.equal(weightBytesPerToken(LLAMA_BENCH_SHAPES['smollm2-135m']!, 'q4_0') / weightBytesPerToken(LLAMA_BENCH_SHAPES['smollm2-135m']!, 'f32'), 18 / 32 / 4);
  });

  it('a cache folder keeps the GGUF files: one already there is used, not written again', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-llamacache-'));
    try {
      const kept = join(dir, 'tinyllama-1.1b-q4_0.gguf');
      writeFileSync(kept, 'a stand-in for a file an earlier run wrote');
      const logs: string[] = [];
      const files = writeLlamaBenchFiles('tinyllama-1.1b', ['q4_0'], dir, (s) => logs.push(s));
      assert.equal(files.get('q4_0'), kept);
      assert.equal(readFileSync(kept, 'utf8'), 'a stand-in for a file an earlier run wrote');
      assert.match(logs.join('\n'), /kept in/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the streaming read times each pass and says how its threads overlapped', { skip: native ? false : 'native addon not built' }, () => {
    const addon = loadAddon()!;
    try {
      const r = measureStreamRead(addon, 2, { bytes: 8 << 20, bursts: 2, passes: 3, gapMs: 1 });
      assert.equal(r.passes.length, 6);
      assert.equal(r.gb_per_s, Math.max(...r.passes.map((p) => p.gb_per_s)));
      for (const p of r.passes) {
        assert.ok(p.gb_per_s > 0 && p.concurrency > 0 && p.concurrency <= 1.0001, JSON.stringify(p));
        assert.ok(p.cpu_over_wall >= 0 && p.cpu_over_wall <= 1, JSON.stringify(p));
      }
      // One slice per pool thread: the timing array is checked against the pool's size.
      addon.setThreads(3);
      assert.throws(() => addon.streamRead(new Uint8Array(1 << 16), new Float64Array(8)), /4 values per pool thread/);
    } finally {
      addon.setThreads(Number(process.env.ATTN_THREADS) || availableParallelism()); // the pool's default size again
    }
  });

  it('the bench takes the memory-read limit in a worker of its own', { skip: native ? false : 'native addon not built' }, () => {
    const r = streamBandwidth(1)!;
    assert.equal(r.threads, 1);
    assert.equal(r.passes.length, 15);
    assert.ok(r.gb_per_s > 0 && r.gb_per_s >= r.median_gb_per_s, JSON.stringify({ ...r, passes: undefined }));
  });

  it('the worker loads a GGUF file in its own process and times decode and prefill', { skip: native ? false : 'native addon not built' }, () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-llamabench-'));
    try {
      const m = new Llama(config({ block_size: 512 }), new Rng(3));
      const file = join(dir, 'tiny-q4_0.gguf');
      const { metadata, tensors } = llamaToGGUF(m, null, 'q4_0');
      writeGGUF(file, metadata, tensors);
      const r = runLlamaWorker({ impl: 'attn', file, threads: 2, decodeSteps: 4, prefillReps: 1, profile: true, trace: true });
      for (const k of ['decode_tokens_per_s', 'prefill_tokens_per_s', 'decode_tokens_per_cpu_s', 'max_rss_mb'] as const) assert.ok(Number.isFinite(r[k]) && r[k] > 0, `${k} ${r[k]}`);
      // The profile charges each op its own time: the parts add up to the step.
      const p = r.profile!;
      const parts = Object.entries(p).filter(([k]) => k !== 'step').reduce((s, [, v]) => s + v, 0);
      assert.ok(Math.abs(parts - p.step!) < 1e-6 * Math.max(1, p.step!) + 1e-9, `${parts} vs ${p.step}`);
      assert.ok(p.down_proj! > 0 && p.lm_head! > 0 && p.RMSNorm! > 0);
      // The trace: one native call a token (the stack and the head), its phases inside each task's time.
      const t = r.decode_trace!;
      assert.equal(t.calls, 1);
      assert.ok(t.call_ms! > 0 && t.call_ms! <= t.step_ms!, JSON.stringify(t));
      for (const task of [0, 1]) {
        const parts = ['qkv', 'attend', 'o', 'mlp', 'down', 'head'].flatMap((ph) => ['work', 'first', 'wait'].map((k) => t[`t${task}_${ph}_${k}`]!));
        const wall = t[`t${task}_wall`]!;
        assert.ok(parts.every((x) => x >= 0) && parts.reduce((a, b) => a + b) <= wall * 1.001 + 1e-6, `task ${task}: ${JSON.stringify(t)}`);
      }
      assert.ok(t.t0_mlp_work! > 0 && t.t0_qkv_first! > 0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
