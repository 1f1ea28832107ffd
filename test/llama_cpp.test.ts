import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { runExport } from '../src/cli/export.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { readGGUF } from '../src/io/gguf.js';
import { loadModel, modelFiles } from '../src/io/model_dir.js';
import type { CausalLM } from '../src/models/causal_lm.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { Llama } from '../src/models/llama.js';
import { parseLlamaConfig } from '../src/models/llama_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { buildTokenizer } from '../src/tokenizers/index.js';
import { Rng } from '../src/util/rng.js';
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
function attnGreedy(m: CausalLM, ids: number[]): { tokens: number[]; probs: Float32Array[] } {
  const seq = [...ids];
  const probs: Float32Array[] = [];
  for (let s = 0; s < NEW; s++) {
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
async function referee_(path: string, tol: number | null): Promise<string> {
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
        console.log(`# gpt2 ${type}: ${await referee_(path, tol)}`);
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
      const modelDir = join(dir, arch);
      writeDirAtomic(modelDir, modelFiles(model, tokenizer));
      for (const [type, tol] of [['f32', 5e-3], ['f16', 2e-2], ['q8_0', null], ['q4_0', null]] as const) {
        it(`${type}: llama.cpp and attn on the same file: same tokenization and greedy tokens${tol === null ? '' : `, log-probabilities within ${tol}`}`, async () => {
          const path = join(dir, `${arch}-${type}.gguf`);
          runExport({ model: modelDir, to: 'gguf', out: path, type });
          assert.equal(readGGUF(path).metadata.get('general.architecture')?.value, arch);
          console.log(`# ${arch} ${type}: ${await referee_(path, tol)}`);
        });
      }
    });
  }
});
