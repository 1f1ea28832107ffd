import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { Linear } from '../src/nn/linear.js';
import { forwardCached } from '../src/generate/cached_forward.js';
import { fablesCorpus } from '../src/data/fables.js';
import { batchForward } from '../src/generate/batch_step.js';
import { generateBatch } from '../src/generate/engine.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { UserError } from '../src/util/errors.js';
import { hfFiles } from '../src/io/hf_export.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, gradCheck } from './helpers.js';

const ropeGPT = (seed = 4) =>
  new GPT(parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 16, block_size: 32, vocab_size: 40, bias: true, position_encoding: 'rope' }), new Rng(seed)).eval();

describe('GPT with rotary positions (RoPE)', () => {
  it('has no position table, and gradients through the rotation match finite differences', () => {
    const m = ropeGPT();
    assert.equal(m.wpe, null);
    assert.ok(!m.namedParameters().some(([n]) => n.startsWith('wpe')));
    const ids = Int32Array.from([3, 9, 1, 20, 7, 7]);
    const w = (m.h[0]!.attn.c_attn as Linear).weight;
    gradCheck(() => m.forward(ids, [1, 6]).logits, [w]);
  });

  it('the order of tokens matters (positions reach attention)', () => {
    const m = ropeGPT();
    const a = noGrad(() => m.nextTokenLogits(Int32Array.from([5, 6, 7]), [1, 3])).data;
    const b = noGrad(() => m.nextTokenLogits(Int32Array.from([6, 5, 7]), [1, 3])).data;
    assert.ok(a.some((v, i) => Math.abs(v - b[i]!) > 1e-4));
  });

  it('KV-cached decoding of left-padded prompts gives the uncached greedy ids', () => {
    const m = ropeGPT(6);
    const prompts = [[1, 2, 3, 4, 5], [9], [30, 31, 2]];
    const run = (cache: boolean) => [...generateBatch(m, prompts, { maxNewTokens: 12, temperature: 0, cache })];
    assert.deepEqual(run(true), run(false));
  });

  it('continuous batching (ragged rows, own positions) equals each sequence alone', () => {
    const m = ropeGPT(7);
    const prompts = [Int32Array.from([1, 2, 3]), Int32Array.from([7, 8, 9, 10, 11])];
    const solo = prompts.map(() => new KVCache(m.config, 1, 16));
    const mixed = prompts.map(() => new KVCache(m.config, 1, 16));
    noGrad(() => [solo[0]!, mixed[0]!].forEach((c) => forwardCached(m, prompts[0]!, [1, 3], c)));
    const chunks = [Int32Array.of(4), prompts[1]!];
    const got = batchForward(m, chunks, mixed);
    chunks.forEach((chunk, s) => {
      const want = noGrad(() => forwardCached(m, chunk, [1, chunk.length], solo[s]!)).data;
      assertClose(got.subarray(s * 40, (s + 1) * 40), want, 2e-5, `sequence ${s}`);
    });
  });

  it('cannot be exported to the GPT-2 format, and says why', () => {
    assert.throws(() => hfFiles(ropeGPT(), null), (e: unknown) => e instanceof UserError && /RoPE/.test(e.message));
  });

  it('attn train --positions rope trains and samples', () => {
    const work = mkdtempSync(join(tmpdir(), 'attn-rope-'));
    try {
      const corpus = join(work, 'fables.txt');
      writeFileSync(corpus, fablesCorpus(20_000));
      const main = resolve('dist/src/cli/main.js');
      const out = join(work, 'model');
      const tiny = ['--n-layer', '1', '--n-head', '2', '--n-embd', '16', '--block-size', '16', '--batch-size', '4', '--eval-iters', '2', '--warmup-iters', '2', '--max-iters', '20', '--eval-interval', '10'];
      const train = spawnSync(process.execPath, [main, 'train', '--data', corpus, '--out', out, '--positions', 'rope', '--backend', 'js', ...tiny], { encoding: 'utf8' });
      assert.equal(train.status, 0, train.stderr);
      assert.equal(JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')).position_encoding, 'rope');
      const sample = spawnSync(process.execPath, [main, 'sample', '--model', out, '--max-new-tokens', '10', '--backend', 'js', '--prompt', 'Once'], { encoding: 'utf8' });
      assert.equal(sample.status, 0, sample.stderr);
      assert.ok(sample.stdout.length > 4);
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});
