import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { Llama } from '../src/models/llama.js';
import { parseLlamaConfig } from '../src/models/llama_config.js';
import { planLlama } from '../src/plan/llama_plan.js';
import { assertUserError, hasShared, runAttn, SHARED } from './helpers.js';

// SmolLM2-135M: 30 layers, 576 dims, 9 heads / 3 kv heads of 64, SwiGLU 1536, vocab 49152, tied.
const SMOL = { n_layer: 30, n_embd: 576, n_head: 9, n_kv_head: 3, head_dim: 64, intermediate_size: 1536, vocab_size: 49152, block_size: 2048, tie_word_embeddings: true };

describe('attn plan for Llama-family configs', () => {
  it('SmolLM2-135M by hand: parameters, FLOPs, KV cache', () => {
    const p = planLlama(SMOL);
    // attention: 576·576 (q) + 2·576·192 (k, v) + 576·576 (o) = 884,736; MLP 3·576·1536 = 2,654,208; norms 2·576.
    assert.equal(p.params.attentionPerLayer, 884736);
    assert.equal(p.params.mlpPerLayer, 2654208);
    assert.equal(p.params.total, 49152 * 576 + 30 * (884736 + 2654208 + 1152) + 576); // 134,515,008: the published 135M
    assert.equal(p.params.total, 134515008);
    assert.equal(p.params.head, 0);
    // KV cache: 2 · 30 layers · 3 kv heads · 64 · 4 bytes = 46,080 bytes per token, 3× less than 9 kv heads.
    assert.equal(p.kvCache.bytesPerToken, 46080);
    assert.equal(p.kvCache.shrinkVsMultiHead, 3);
    assert.equal(planLlama({ ...SMOL, n_kv_head: 9 }).kvCache.bytesPerToken, 3 * 46080);
    assert.equal(p.flops.attentionForwardPerToken, 4 * 30 * 2048 * 9 * 64);
    assert.equal(p.flops.forwardPerToken, 2 * (30 * (884736 + 2654208) + 49152 * 576) + p.flops.attentionForwardPerToken);
  });

  it('agrees with the real model, tied or not, with Qwen2 biases', () => {
    for (const over of [{}, { tie_word_embeddings: false }, { attention_bias: true }]) {
      const c = parseLlamaConfig({ n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 16, head_dim: 4, intermediate_size: 24, vocab_size: 30, block_size: 8, ...over });
      const m = new Llama(c);
      assert.equal(planLlama(c).params.total, m.namedParameters().reduce((s, [, t]) => s + t.size, 0), JSON.stringify(over));
    }
  });

  it('CLI: --arch llama from flags, --model from a Hugging Face Llama config.json, bad input', () => {
    const r = runAttn(['plan', '--arch', 'llama', '--n-layer', '30', '--n-embd', '576', '--n-head', '9', '--n-kv-head', '3', '--intermediate-size', '1536',
      '--vocab-size', '49152', '--block-size', '2048', '--tie-word-embeddings', '--json'], process.cwd());
    assert.equal(r.code, 0, r.stderr);
    assert.equal((JSON.parse(r.stdout) as { params: { total: number } }).params.total, 134515008);
    const dir = resolve(SHARED, 'reference', 'llama-tiny');
    if (hasShared(dir)) {
      const t = runAttn(['plan', '--model', dir], process.cwd());
      assert.equal(t.code, 0, t.stderr);
      assert.match(t.stdout, /Llama: 2 layers, 32 dims, 4 heads \/ 2 kv heads of 8/);
      assert.match(t.stdout, /2× smaller than with 4 kv heads/);
    }
    assertUserError(runAttn(['plan', '--arch', 'llama', '--n-layer', '2', '--n-embd', '8', '--n-head', '4', '--n-kv-head', '3', '--intermediate-size', '8', '--vocab-size', '9', '--block-size', '4'], process.cwd()), /multiple of n_kv_head/);
    assertUserError(runAttn(['plan', '--arch', 'llama', '--n-layer', '2'], process.cwd()), /missing --n-head/);
    assertUserError(runAttn(['plan', '--arch', 'mamba', '--n-layer', '2'], process.cwd()), /--arch must be gpt or llama/);
  });

  it('CLI: --model on attn\'s own Llama, --arch llama with --model, --tokens budget and its validation', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-llama-plan-'));
    try {
      // What `attn train --arch llama` writes: "format": "attn", "model_type": "attn-llama".
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ format: 'attn', model_type: 'attn-llama', ...SMOL, rms_norm_eps: 1e-6, rope_theta: 10000, rope_scaling: null, dropout: 0 }));
      const r = runAttn(['plan', '--model', dir], process.cwd());
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^Llama: 30 layers, 576 dims, 9 heads \/ 3 kv heads of 64/);
      assert.doesNotMatch(r.stdout, /wpe|GPT/);
      const j = runAttn(['plan', '--model', dir, '--arch', 'llama', '--json'], process.cwd());
      assert.equal(j.code, 0, j.stderr);
      assert.equal((JSON.parse(j.stdout) as { params: { total: number } }).params.total, 134515008);
      const t = runAttn(['plan', '--model', dir, '--tokens', '1e9'], process.cwd());
      assert.equal(t.code, 0, t.stderr);
      assert.match(t.stdout, /Your budget: 1\.00B tokens/);
      assert.match(t.stdout, /tokens per parameter\s+7\.43\s+under Chinchilla-optimal/);
      const tj = JSON.parse(runAttn(['plan', '--model', dir, '--tokens', '1000', '--json'], process.cwd()).stdout) as { budget: { tokens: number; flops: number } };
      assert.deepEqual([tj.budget.tokens, tj.budget.flops], [1000, 6 * 134515008 * 1000]);
      assertUserError(runAttn(['plan', '--model', dir, '--tokens', '-5'], process.cwd()), /--tokens must be positive, got -5/);
      assertUserError(runAttn(['plan', '--arch', 'llama', '--n-layer', '30', '--n-embd', '576', '--n-head', '9', '--intermediate-size', '1536', '--vocab-size', '49152', '--block-size', '2048', '--tokens', '0'], process.cwd()), /--tokens must be positive, got 0/);
      writeFileSync(join(dir, 'config.json'), JSON.stringify({ format: 'attn', model_type: 'attn-gpt', n_layer: 1, n_head: 2, n_embd: 8, block_size: 4, vocab_size: 9, bias: false }));
      assertUserError(runAttn(['plan', '--model', dir, '--arch', 'llama'], process.cwd()), /--arch llama: .* is not a Llama-family config/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
