import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, describe, it } from 'node:test';
import { runExport } from '../src/cli/export.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { loadGPT, modelFiles } from '../src/io/model_dir.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { buildTokenizer } from '../src/tokenizers/index.js';
import { Rng } from '../src/util/rng.js';

/**
 * llama.cpp as the referee: a GPT-2 model attn exports as GGUF must load in
 * llama.cpp (node-llama-cpp 3.21.1, which ships it prebuilt) and give the
 * same greedy tokens and next-token log-probabilities (log-softmax of the
 * logits: llama.cpp's sampler hands out probabilities, not raw scores).
 *
 * node-llama-cpp is ~700 MB, so it is not a dependency: it is installed on
 * first use into .referees/node-llama-cpp@3.21.1/ (gitignored), the layout of
 * test/referees.ts on the tokenizer branch (a minimal local version here; use
 * that helper once both are merged). Offline this test is skipped with a
 * message; with ATTN_REQUIRE_REFEREES=1 it fails instead.
 */
const PKG = 'node-llama-cpp';
const VERSION = '3.21.1';

function installReferee(): string | null {
  const prefix = resolve(process.cwd(), '.referees', `${PKG}@${VERSION}`);
  const entry = join(prefix, 'node_modules', PKG, 'dist', 'index.js');
  if (existsSync(entry)) return entry;
  mkdirSync(prefix, { recursive: true });
  const r = spawnSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', `${PKG}@${VERSION}`], { encoding: 'utf8', timeout: 600_000 });
  if (r.status === 0 && existsSync(entry)) return entry;
  const why = `cannot install the referee ${PKG}@${VERSION} (offline?): ${(r.stderr || r.error?.message || '').trim().split('\n').slice(-1)[0]}`;
  if (process.env.ATTN_REQUIRE_REFEREES === '1') throw new Error(why);
  console.log(`# ${why}: skipped (set ATTN_REQUIRE_REFEREES=1 to make this a failure)`);
  return null;
}

const entry = installReferee();
const dir = mkdtempSync(join(tmpdir(), 'attn-llamacpp-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('llama.cpp runs the GGUF files attn exports', { skip: entry ? false : `${PKG} not installed` }, () => {
  const text = 'the quick brown fox jumps over the lazy dog. '.repeat(40) + 'a stitch in time saves nine; all that glitters is not gold. '.repeat(30);
  const tokenizer = buildTokenizer('bpe', text, 300);
  const config = parseGPTConfig({ n_layer: 2, n_head: 4, n_embd: 64, block_size: 64, vocab_size: 300, bias: true });
  const model = new GPT(config, new Rng(7));
  // Random weights give near-uniform scores; larger ones give clear winners, so greedy choices cannot flip on rounding.
  for (const [name, p] of model.namedParameters()) if (p.shape.length === 2) p.data.forEach((v, i) => (p.data[i] = v * (name === 'wte.weight' ? 8 : 2)));
  const modelDir = join(dir, 'model');
  writeDirAtomic(modelDir, modelFiles(model, tokenizer));
  const prompt = 'the lazy fox saves';
  const NEW = 12;

  /** attn's greedy continuation and each step's probabilities (full forward each step: no cache to trust). */
  function attnGreedy(m: GPT, ids: number[]): { tokens: number[]; probs: Float32Array[] } {
    const seq = [...ids];
    const probs: Float32Array[] = [];
    for (let s = 0; s < NEW; s++) {
      const logits = noGrad(() => m.nextTokenLogits(Int32Array.from(seq), [1, seq.length]).data);
      const max = Math.max(...logits);
      const e = logits.map((v) => Math.exp(v - max));
      const sum = e.reduce((a, b) => a + b, 0);
      probs.push(e.map((v) => v / sum));
      seq.push(logits.indexOf(max));
    }
    return { tokens: seq.slice(ids.length), probs };
  }

  // ggml's CPU GELU reads a table of f16 values, so even F32 files differ from exact math by ~1e-3 relative.
  for (const [type, tol] of [['f32', 5e-3], ['f16', 3e-2]] as const) {
    it(`${type}: same tokenization, same greedy tokens, log-probabilities of likely next tokens (p > 1e-6) within ${tol}`, async () => {
      const path = join(dir, `gpt2-${type}.gguf`);
      runExport({ model: modelDir, to: 'gguf', out: path, type });
      // attn on the same file (for f16: the same rounded weights llama.cpp uses).
      const mine = attnGreedy(loadGPT(path).model, Array.from(tokenizer.encode(prompt)));

      const { getLlama, LlamaLogLevel } = await import(pathToFileURL(entry!).href);
      const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
      const lm = await llama.loadModel({ modelPath: path });
      try {
        assert.deepEqual(Array.from(lm.tokenize(text.slice(0, 300))), Array.from(tokenizer.encode(text.slice(0, 300))), 'tokenizer');
        const ctx = await lm.createContext({ contextSize: 64, threads: 1 });
        const seqs = ctx.getSequence();
        const tokens: number[] = [];
        let worst = 0;
        for await (const out of seqs.evaluateWithMetadata(Array.from(tokenizer.encode(prompt)), { probabilities: true }, { temperature: 0 })) {
          const p = mine.probs[tokens.length]!;
          for (const [tok, prob] of out.probabilities as Map<number, number>) if (prob > 1e-6) worst = Math.max(worst, Math.abs(Math.log(prob) - Math.log(p[tok]!)));
          tokens.push(out.token);
          if (tokens.length === NEW) break;
        }
        await ctx.dispose();
        assert.deepEqual(tokens, mine.tokens, 'greedy tokens');
        assert.ok(worst <= tol, `worst log-probability difference ${worst}`);
        console.log(`# ${type}: ${NEW} greedy tokens equal; worst next-token log-probability difference ${worst.toExponential(2)}`);
      } finally {
        await lm.dispose();
      }
    });
  }
});
