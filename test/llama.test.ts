import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { generateBatch } from '../src/generate/engine.js';
import { Llama } from '../src/models/llama.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { llamaConfigFromHF, llamaParameterCount, parseLlamaConfig, type LlamaConfigInput } from '../src/models/llama_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, gradCheck, randn } from './helpers.js';

const tiny = (over: Partial<LlamaConfigInput> = {}) =>
  parseLlamaConfig({ n_layer: 1, n_head: 4, n_kv_head: 2, n_embd: 8, head_dim: 2, intermediate_size: 6, vocab_size: 11, block_size: 16, rms_norm_eps: 1e-5, ...over });

describe('Llama-family model', () => {
  it('names its parameters as a Hugging Face LlamaForCausalLM checkpoint, and counts them', () => {
    const m = new Llama(tiny({ n_layer: 2, attention_bias: true }));
    const names = m.namedParameters().map(([n]) => n);
    for (const n of ['model.embed_tokens.weight', 'model.layers.1.input_layernorm.weight', 'model.layers.0.self_attn.q_proj.weight',
      'model.layers.0.self_attn.k_proj.bias', 'model.layers.0.self_attn.o_proj.weight', 'model.layers.0.post_attention_layernorm.weight',
      'model.layers.0.mlp.gate_proj.weight', 'model.layers.0.mlp.up_proj.weight', 'model.layers.0.mlp.down_proj.weight', 'model.norm.weight', 'lm_head.weight']) {
      assert.ok(names.includes(n), n);
    }
    assert.ok(!names.includes('model.layers.0.self_attn.o_proj.bias')); // Qwen2: q/k/v biases only
    assert.deepEqual(m.namedParameters().find(([n]) => n === 'model.layers.0.self_attn.k_proj.weight')![1].shape, [4, 8]); // 2 kv heads × 2
    const total = m.namedParameters().reduce((s, [, p]) => s + p.size, 0);
    assert.equal(llamaParameterCount(m.config), total);
    assert.equal(llamaParameterCount({ ...m.config, tie_word_embeddings: true }), total - 11 * 8);
    assert.ok(!new Llama(tiny({ tie_word_embeddings: true })).namedParameters().some(([n]) => n === 'lm_head.weight'));
  });

  it('gradients of the whole model match finite differences (GQA, biases, untied head, yarn)', () => {
    const m = new Llama(tiny({ attention_bias: true, rope_scaling: { rope_type: 'yarn', factor: 2, original_max_position_embeddings: 4 } }), new Rng(3));
    const ids = Int32Array.of(1, 5, 9, 2, 2, 7, 0, 10);
    const targets = Int32Array.of(5, 9, 2, 2, 7, 0, 10, 3);
    const inputs = m.namedParameters().map(([, p]) => p);
    gradCheck(() => m.forward(ids, [2, 4], targets).logits, inputs);
    gradCheck(() => m.forward(ids, [2, 4], targets).loss!, inputs);
  });

  it('keeps keys and values once per key/value head: the KV cache shrinks by n_head / n_kv_head', () => {
    const gqa = new Llama(tiny({ n_kv_head: 2 }), new Rng(1));
    const mha = new Llama(tiny({ n_kv_head: gqa.config.n_head }), new Rng(1));
    const width = (m: Llama) => new KVCache(m.config, 1).layers[0]!.k.length;
    assert.equal(width(mha) / width(gqa), gqa.config.n_head / 2);
    assert.equal(gqa.model.layers[0]!.self_attn.k_proj.forward(randn([1, 1, gqa.config.n_embd], new Rng(2))).shape[2], 2 * gqa.config.head_dim);
  });

  it('the order of tokens matters, and multi-query (one kv head) runs', () => {
    for (const n_kv_head of [4, 2, 1]) {
      const m = new Llama(tiny({ n_kv_head }), new Rng(5)).eval();
      const rng = new Rng(6);
      for (const [, p] of m.namedParameters()) for (let i = 0; i < p.size; i++) p.data[i] = rng.normal() * 0.5; // away from init's near-uniform attention
      const a = noGrad(() => m.nextTokenLogits(Int32Array.of(5, 6, 7), [1, 3])).data;
      const b = noGrad(() => m.nextTokenLogits(Int32Array.of(6, 5, 7), [1, 3])).data;
      assert.ok(a.some((v, i) => Math.abs(v - b[i]!) > 1e-5), `n_kv_head ${n_kv_head}`);
    }
  });

  it('KV-cached decoding of left-padded prompts gives the uncached greedy ids', () => {
    const m = new Llama(tiny({ n_layer: 2, rope_theta: 100 }), new Rng(8));
    const prompts = [[1, 2, 3, 4, 5], [7, 3]];
    const run = (cache: boolean) => [...generateBatch(m, prompts, { maxNewTokens: 6, greedy: true, cache })];
    assert.deepEqual(run(true), run(false));
    // The last-position logits of a cached prefill equal the full forward's.
    const ids = Int32Array.of(3, 1, 4, 1, 5);
    const full = noGrad(() => m.nextTokenLogits(ids, [1, 5])).data;
    const steps = [...generateBatch(m, [ids], { maxNewTokens: 1, greedy: true })];
    assert.equal(steps[0]![0], full.indexOf(Math.max(...full)));
  });

  it('config: GQA must divide, head_dim even, sizes bounded before allocating', () => {
    assert.throws(() => tiny({ n_kv_head: 3 }), (e: unknown) => e instanceof UserError && /multiple of n_kv_head/.test(e.message));
    assert.throws(() => tiny({ head_dim: 3 }), /head_dim must be even/);
    assert.throws(() => tiny({ vocab_size: 1e9 }), UserError);
    assert.throws(() => tiny({ n_layer: 1000, n_embd: 60000, n_head: 60, n_kv_head: 60, head_dim: 1000, intermediate_size: 200000 }), /parameters/);
  });

  it('maps Hugging Face configs of Llama, Qwen2 and Mistral, and names unknown architectures', () => {
    const base = { num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, hidden_size: 32, intermediate_size: 64, vocab_size: 100, max_position_embeddings: 128 };
    const llama = llamaConfigFromHF({ ...base, architectures: ['LlamaForCausalLM'], rope_theta: 500000, tie_word_embeddings: true,
      rope_scaling: { rope_type: 'llama3', factor: 32, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }, 'c');
    assert.equal(llama.head_dim, 8);
    assert.equal(llama.rope_theta, 500000);
    assert.equal(llama.rope_scaling?.rope_type, 'llama3');
    assert.equal(llama.attention_bias, false);
    assert.equal(llama.tie_word_embeddings, true);
    const qwen = llamaConfigFromHF({ ...base, architectures: ['Qwen2ForCausalLM'], rope_scaling: { type: 'yarn', factor: 4, original_max_position_embeddings: 32 } }, 'c');
    assert.equal(qwen.attention_bias, true);
    assert.equal(qwen.attention_out_bias, false);
    assert.equal(qwen.rope_scaling?.rope_type, 'yarn');
    assert.equal(qwen.tie_word_embeddings, false);
    const mistral = llamaConfigFromHF({ ...base, model_type: 'mistral', sliding_window: 64 }, 'c');
    assert.equal(mistral.block_size, 64);
    assert.equal(llamaConfigFromHF({ ...base, model_type: 'llama', rope_scaling: { rope_type: 'default' } }, 'c').rope_scaling, null);
    assert.throws(() => llamaConfigFromHF({ ...base, architectures: ['GemmaForCausalLM'] }, 'cfg.json'),
      (e: unknown) => e instanceof UserError && /GemmaForCausalLM/.test(e.message) && /LlamaForCausalLM, Qwen2ForCausalLM, MistralForCausalLM/.test(e.message));
    assert.throws(() => llamaConfigFromHF({ ...base, model_type: 'llama', hidden_act: 'gelu' }, 'c'), /hidden_act "gelu"/);
    assert.throws(() => llamaConfigFromHF({ ...base, model_type: 'llama', rope_scaling: { rope_type: 'longrope', factor: 2 } }, 'c'), /"longrope" is not supported/);
  });

  it('an untied head reads its own matrix; a tied one the embedding', () => {
    const tied = new Llama(tiny({ tie_word_embeddings: true }), new Rng(2)).eval();
    const ids = Int32Array.of(4, 3);
    const before = noGrad(() => tied.forward(ids, [1, 2]).logits.data);
    tied.model.embed_tokens.weight.data[3 * 8] += 1; // changes the output row of token 3 too
    const after = noGrad(() => tied.forward(ids, [1, 2]).logits.data);
    assert.notEqual(before[11 + 3], after[11 + 3]);
    assertClose([llamaParameterCount(tied.config)], [tied.namedParameters().reduce((s, [, p]) => s + p.size, 0)], 0);
  });
});
