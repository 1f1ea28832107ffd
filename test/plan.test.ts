import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { formatBytes, formatCount, formatFlops } from '../src/plan/format.js';
import { planModel } from '../src/plan/plan.js';
import { Rng } from '../src/util/rng.js';
import { runAttn, assertUserError } from './helpers.js';

const work = mkdtempSync(join(tmpdir(), 'attn-plan-'));
after(() => rmSync(work, { recursive: true, force: true }));

const attn = (args: string[]) => runAttn(args, work);

function assertOneLineError(r: { code: number; stderr: string }, pattern: RegExp): void {
  assertUserError(r, pattern);
  assert.ok(r.stderr.trim().split('\n').length <= 2, `one line (plus the --help hint): ${r.stderr}`);
}

const GPT2 = { n_layer: 12, n_head: 12, n_embd: 768, block_size: 1024, vocab_size: 50257, bias: true };
const GPT2_FLAGS = ['--n-layer', '12', '--n-head', '12', '--n-embd', '768', '--block-size', '1024', '--vocab-size', '50257'];

describe('planModel: GPT-2 124M, by hand', () => {
  const p = planModel(GPT2, { batchSize: 8 });

  it('counts 124 439 808 parameters, by component', () => {
    assert.equal(p.params.tokenEmbedding, 50257 * 768); // 38 597 376
    assert.equal(p.params.positionEmbedding, 1024 * 768); // 786 432
    // per block: ln_1 + ln_2 = 2·(768 + 768); attention 4·768² + 4·768; MLP 8·768² + 5·768
    assert.equal(p.params.perBlock.layernorms, 3072);
    assert.equal(p.params.perBlock.attention, 2_362_368);
    assert.equal(p.params.perBlock.mlp, 4_722_432);
    assert.equal(p.params.perBlock.total, 7_087_872);
    assert.equal(p.params.blocks.total, 85_054_464);
    assert.equal(p.params.finalLayerNorm, 1536);
    assert.equal(p.params.head, 0);
    assert.equal(p.params.total, 124_439_808);
    assert.equal(p.params.nonEmbedding, 124_439_808 - 38_597_376 - 786_432);
    assert.equal(p.params.matmul, 12 * 12 * 768 * 768 + 50257 * 768); // 123 532 032
  });

  it('FLOPs per token: 2M / 6M plus attention at full context', () => {
    assert.equal(p.flops.attentionForwardPerToken, 4 * 12 * 1024 * 768); // 37 748 736
    assert.equal(p.flops.inferencePerToken, 2 * 123_532_032 + 37_748_736); // 284 812 800
    assert.equal(p.flops.trainingPerToken, 854_438_400);
    assert.equal(p.flops.inferencePerToken2N, 248_879_616);
    assert.equal(p.flops.trainingPerToken6N, 746_638_848);
  });

  it('memory: fp32 weights, gradients, AdamW and activations at batch 8', () => {
    assert.equal(p.memory.weights, 497_759_232);
    assert.equal(p.memory.gradients, 497_759_232);
    assert.equal(p.memory.adamw, 995_518_464);
    // per token per layer 16·768 + 12·1024 values; outside layers 2·768 + 2·50257; 8·1024 tokens; 4 bytes
    assert.equal(p.memory.activationsPerTokenPerLayer, (16 * 768 + 12 * 1024) * 4);
    assert.equal(p.memory.activations, 8 * 1024 * (12 * (16 * 768 + 12 * 1024) + 2 * 768 + 2 * 50257) * 4); // 13 019 381 760
    assert.equal(p.memory.activations, 13_007_650_816);
    assert.equal(p.memory.activationsFusedAttention, 8 * 1024 * (12 * (16 * 768 + 12) + 2 * 768 + 2 * 50257) * 4);
    assert.equal(p.memory.trainingTotal, 4 * 497_759_232 + 13_007_650_816);
  });

  it('KV cache: 2·L·d fp32 values per token', () => {
    assert.equal(p.kvCache.bytesPerToken, 73_728); // 72 KiB
    assert.equal(p.kvCache.bytesFullContext, 75_497_472); // 72 MiB
    assert.equal(p.kvCache.bytesFullContextBatch, 8 * 75_497_472);
  });

  it('Chinchilla: 20 tokens per parameter, 6·N·D', () => {
    assert.equal(p.chinchilla.tokens, 2_488_796_160);
    assert.equal(p.chinchilla.flops, 6 * 124_439_808 * 2_488_796_160); // ≈ 1.858e18
    assert.ok(Math.abs(p.chinchilla.flops - 1.8582e18) < 1e14);
    assert.equal(p.chinchilla.flopsWithAttention, 854_438_400 * 2_488_796_160);
  });
});

describe('planModel: a tiny config, by hand', () => {
  // L 2, h 2, d 8, T 4, V 10, biases, batch 3
  const p = planModel({ n_layer: 2, n_head: 2, n_embd: 8, block_size: 4, vocab_size: 10, bias: true }, { batchSize: 3, tokens: 1000 });

  it('parameters', () => {
    assert.equal(p.params.tokenEmbedding, 80);
    assert.equal(p.params.positionEmbedding, 32);
    assert.deepEqual(p.params.perBlock, { layernorms: 32, attention: 288, mlp: 552, total: 872 });
    assert.deepEqual(p.params.blocks, { layernorms: 64, attention: 576, mlp: 1104, total: 1744 });
    assert.equal(p.params.finalLayerNorm, 16);
    assert.equal(p.params.total, 1872);
    assert.equal(p.params.matmul, 1616);
  });

  it('FLOPs, memory, KV cache, Chinchilla and the budget', () => {
    assert.equal(p.flops.attentionForwardPerToken, 256);
    assert.equal(p.flops.forwardPerToken, 3488);
    assert.equal(p.flops.trainingPerToken, 10464);
    assert.equal(p.memory.weights, 7488);
    assert.equal(p.memory.adamw, 14976);
    assert.equal(p.memory.activationsPerTokenPerLayer, 136 * 4);
    assert.equal(p.memory.activations, 14784); // 12 tokens × (2·136 + 36) values × 4
    assert.equal(p.memory.activationsFusedAttention, 14208); // 12 × (2·130 + 36) × 4
    assert.equal(p.memory.trainingTotal, 44736);
    assert.deepEqual(p.kvCache, { bytesPerToken: 128, bytesFullContext: 512, bytesFullContextBatch: 1536 });
    assert.deepEqual(p.chinchilla, { tokens: 37440, flops: 420_526_080, flopsWithAttention: 391_772_160 });
    assert.deepEqual(p.budget, { tokens: 1000, tokensPerParameter: 1000 / 1872, flops: 6 * 1872 * 1000, flopsWithAttention: 10_464_000 });
  });

  it('without biases, with dropout masks, at 2 bytes per value', () => {
    const q = planModel({ n_layer: 2, n_head: 2, n_embd: 8, block_size: 4, vocab_size: 10, bias: false, dropout: 0.1 }, { bytesPerValue: 2 });
    assert.equal(q.params.total, 80 + 32 + 2 * (16 + 256 + 512) + 8); // 1688
    assert.equal(q.memory.weights, 1688 * 2);
    assert.equal(q.memory.activationsPerTokenPerLayer, (136 + 24) * 2);
    assert.equal(q.kvCache.bytesPerToken, 64);
  });
});

describe('planModel agrees with the real model', () => {
  const configs = [
    { n_layer: 1, n_head: 1, n_embd: 4, block_size: 3, vocab_size: 7, bias: true },
    { n_layer: 2, n_head: 2, n_embd: 16, block_size: 16, vocab_size: 65, bias: false },
    { n_layer: 4, n_head: 4, n_embd: 128, block_size: 64, vocab_size: 65, bias: false },
    { n_layer: 3, n_head: 6, n_embd: 96, block_size: 40, vocab_size: 300, bias: true },
  ];
  for (const c of configs) {
    it(`parameter count of ${JSON.stringify(c)} equals GPT.numParameters()`, () => {
      const model = new GPT(parseGPTConfig(c), new Rng(1));
      assert.equal(planModel(c).params.total, model.numParameters());
    });
  }
});

describe('planModel rejects sizes that cannot make a model', () => {
  it('n_embd not divisible by n_head', () => {
    assert.throws(() => planModel({ ...GPT2, n_head: 5 }), /n_embd \(768\) must be divisible by n_head \(5\)/);
  });
  it('non-positive or fractional sizes, bad batch', () => {
    assert.throws(() => planModel({ ...GPT2, n_layer: 0 }), /n_layer must be a positive integer/);
    assert.throws(() => planModel({ ...GPT2, vocab_size: 1.5 }), /vocab_size must be a positive integer/);
    assert.throws(() => planModel(GPT2, { batchSize: 0 }), /batch size/);
  });
});

describe('format helpers', () => {
  it('rounds counts, bytes and FLOPs readably', () => {
    assert.equal(formatCount(124_439_808), '124.44M');
    assert.equal(formatCount(999), '999');
    assert.equal(formatBytes(73_728), '72.0 KiB');
    assert.equal(formatBytes(100), '100 B');
    assert.equal(formatFlops(854_438_400), '854.44 MFLOP');
  });
});

describe('attn plan (CLI)', () => {
  it('prints the plan for GPT-2 124M from flags', () => {
    const r = attn(['plan', ...GPT2_FLAGS, '--tokens', '1e9']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /total\s+124,439,808\s+124\.44M/);
    assert.match(r.stdout, /training \(6·M \+ 12·L·T·d\)\s+854\.44 MFLOP/);
    assert.match(r.stdout, /per token \(2·L·d values\)\s+72\.0 KiB/);
    assert.match(r.stdout, /tokens \(20·N\)\s+2\.49B/);
    assert.match(r.stdout, /Your budget: 1\.00B tokens/);
  });

  it('--json gives the typed plan', () => {
    const r = attn(['plan', ...GPT2_FLAGS, '--batch-size', '8', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const p = JSON.parse(r.stdout);
    assert.deepEqual(p, JSON.parse(JSON.stringify(planModel(GPT2, { batchSize: 8 }))));
    assert.equal(typeof p.formulas.activations, 'string');
  });

  it('--model reads a Hugging Face GPT-2 config.json (n_positions) or attn\'s own', () => {
    const hf = join(work, 'hf');
    mkdirSync(hf);
    writeFileSync(join(hf, 'config.json'), JSON.stringify({ model_type: 'gpt2', n_layer: 12, n_head: 12, n_embd: 768, n_positions: 1024, n_ctx: 1024, vocab_size: 50257 }));
    const r = attn(['plan', '--model', hf, '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).params.total, 124_439_808);

    const ours = join(work, 'ours');
    mkdirSync(ours);
    writeFileSync(join(ours, 'config.json'), JSON.stringify({ format: 'attn', model_type: 'attn-gpt', n_layer: 2, n_head: 2, n_embd: 8, block_size: 4, vocab_size: 10, dropout: 0, bias: true, layer_norm_epsilon: 1e-5 }));
    const o = attn(['plan', '--model', ours, '--json']);
    assert.equal(o.code, 0, o.stderr);
    assert.equal(JSON.parse(o.stdout).params.total, 1872);
    // flags override the file
    const longer = attn(['plan', '--model', ours, '--block-size', '8', '--json']);
    assert.equal(JSON.parse(longer.stdout).params.positionEmbedding, 64);
  });

  it('bad input: one clear line', () => {
    assertOneLineError(attn(['plan', '--n-layer', '12', '--n-head', '5', '--n-embd', '768', '--block-size', '1024', '--vocab-size', '50257']), /n_embd \(768\) must be divisible by n_head \(5\)/);
    assertOneLineError(attn(['plan', '--n-layer', '12', '--n-head', '12', '--n-embd', '768', '--vocab-size', '50257']), /missing --block-size/);
    assertOneLineError(attn(['plan', ...GPT2_FLAGS.slice(0, 8), '--vocab-size', 'lots']), /"lots" is not a number/);
    assertOneLineError(attn(['plan', ...GPT2_FLAGS, '--n-layer', '0']), /--n-layer must be a positive integer/);
    assertOneLineError(attn(['plan', '--model', join(work, 'nowhere')]), /does not exist/);
    const bad = join(work, 'bad');
    mkdirSync(bad);
    writeFileSync(join(bad, 'config.json'), JSON.stringify({ model_type: 'mamba' }));
    assertOneLineError(attn(['plan', '--model', bad]), /architecture "mamba" is not supported/);
    // Llama-family configs are planned (test/llama_plan.test.ts); an incomplete one names the missing key.
    writeFileSync(join(bad, 'config.json'), JSON.stringify({ model_type: 'llama' }));
    assertOneLineError(attn(['plan', '--model', bad]), /num_hidden_layers is missing/);
  });
});
