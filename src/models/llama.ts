import { Dropout } from '../nn/dropout.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { RMSNorm } from '../nn/rmsnorm.js';
import { cachedAttention, scaledDotProductAttention, type KVLayer } from '../tensor/ops/attention.js';
import { crossEntropy } from '../tensor/ops/cross_entropy.js';
import { add, mul, silu } from '../tensor/ops/elementwise.js';
import { linear } from '../tensor/ops/linear.js';
import { rope, type RopeOptions } from '../tensor/ops/rope.js';
import { concat, reshape, slice } from '../tensor/ops/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import type { CausalLM, CausalLMOutput, KVCacheLike } from './causal_lm.js';
import type { LlamaConfig } from './llama_config.js';

/** Hugging Face's initializer_range: every weight matrix starts as N(0, 0.02²). */
const INIT_STD = 0.02;

/**
 * PROVISIONAL: to be replaced by nn/attention.ts (MultiHeadAttention with
 * nKvHead and rope options) at merge.
 *
 * Grouped-query self-attention as in Hugging Face's LlamaAttention: n_head
 * query heads, n_kv_head key/value heads, each key/value head shared by
 * n_head / n_kv_head consecutive query heads; queries and keys rotated by
 * position (RoPE, rotate_half layout).
 */
export class LlamaAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  o_proj: Linear;
  readonly nHead: number;
  readonly nKvHead: number;
  readonly rope: RopeOptions;

  constructor(c: LlamaConfig, rng: Rng) {
    super();
    this.nHead = c.n_head;
    this.nKvHead = c.n_kv_head;
    this.rope = { base: c.rope_theta, layout: 'half', scaling: c.rope_scaling };
    const q = c.n_head * c.head_dim;
    const kv = c.n_kv_head * c.head_dim;
    this.q_proj = new Linear(c.n_embd, q, { bias: c.attention_bias, std: INIT_STD, rng });
    this.k_proj = new Linear(c.n_embd, kv, { bias: c.attention_bias, std: INIT_STD, rng });
    this.v_proj = new Linear(c.n_embd, kv, { bias: c.attention_bias, std: INIT_STD, rng });
    this.o_proj = new Linear(q, c.n_embd, { bias: c.attention_out_bias, std: INIT_STD, rng });
  }

  /** positions: T (shared by the rows) or B·T entries. */
  forward(x: Tensor, positions: Int32Array): Tensor {
    const [q, k, v] = this.qkv(x, positions);
    return this.o_proj.forward(scaledDotProductAttention(q, k, v, this.nHead, { causal: true }));
  }

  /** Generation: new positions only, earlier keys and values read from `kv` (which holds them repeated per query head). */
  forwardCached(x: Tensor, kv: KVLayer, positions: Int32Array): Tensor {
    const [q, k, v] = this.qkv(x, positions);
    return this.o_proj.forward(cachedAttention(q, k, v, this.nHead, kv));
  }

  /** Queries, and keys and values repeated to one per query head, queries and keys rotated to their positions. */
  private qkv(x: Tensor, positions: Int32Array): [Tensor, Tensor, Tensor] {
    const q = rope(this.q_proj.forward(x), this.nHead, positions, this.rope);
    const k = rope(this.k_proj.forward(x), this.nKvHead, positions, this.rope);
    const v = this.v_proj.forward(x);
    return [q, repeatKvHeads(k, this.nKvHead, this.nHead), repeatKvHeads(v, this.nKvHead, this.nHead)];
  }
}

/**
 * PROVISIONAL: until the attention op takes nKvHead (grouped-query attention
 * without copies), copy each key/value head to the n_head / n_kv_head query
 * heads that share it, as Hugging Face's repeat_kv does: [B, T, nKv·D] →
 * [B, T, nHead·D], kv head j serving query heads j·g … j·g + g − 1. concat
 * carries the gradient back (summed over the copies).
 */
export function repeatKvHeads(x: Tensor, nKvHead: number, nHead: number): Tensor {
  if (nKvHead === nHead) return x;
  const [B, T, C] = x.shape as [number, number, number];
  const D = C / nKvHead;
  const g = nHead / nKvHead;
  const heads = reshape(x, [B, T, nKvHead, 1, D]);
  return reshape(concat(Array.from({ length: g }, () => heads), 3), [B, T, nHead * D]);
}

/**
 * PROVISIONAL: to be replaced by nn/feed_forward.ts (FeedForward with silu
 * and gating) at merge.
 *
 * The SwiGLU MLP (Shazeer 2020): down(silu(gate(x)) · up(x)). The gate
 * decides, per hidden unit, how much of up(x) passes.
 */
export class LlamaMLP extends Module {
  gate_proj: Linear;
  up_proj: Linear;
  down_proj: Linear;

  constructor(c: LlamaConfig, rng: Rng) {
    super();
    this.gate_proj = new Linear(c.n_embd, c.intermediate_size, { bias: c.mlp_bias, std: INIT_STD, rng });
    this.up_proj = new Linear(c.n_embd, c.intermediate_size, { bias: c.mlp_bias, std: INIT_STD, rng });
    this.down_proj = new Linear(c.intermediate_size, c.n_embd, { bias: c.mlp_bias, std: INIT_STD, rng });
  }

  forward(x: Tensor): Tensor {
    return this.down_proj.forward(mul(silu(this.gate_proj.forward(x)), this.up_proj.forward(x)));
  }
}

/** One pre-norm decoder layer: x + attn(norm(x)), then x + mlp(norm(x)). */
export class LlamaDecoderLayer extends Module {
  input_layernorm: RMSNorm;
  self_attn: LlamaAttention;
  post_attention_layernorm: RMSNorm;
  mlp: LlamaMLP;
  resid_dropout: Dropout;

  constructor(c: LlamaConfig, rng: Rng) {
    super();
    this.input_layernorm = new RMSNorm(c.n_embd, { eps: c.rms_norm_eps });
    this.self_attn = new LlamaAttention(c, rng);
    this.post_attention_layernorm = new RMSNorm(c.n_embd, { eps: c.rms_norm_eps });
    this.mlp = new LlamaMLP(c, rng);
    this.resid_dropout = new Dropout(c.dropout, rng);
  }

  forward(x: Tensor, positions: Int32Array): Tensor {
    x = add(x, this.resid_dropout.forward(this.self_attn.forward(this.input_layernorm.forward(x), positions)));
    return add(x, this.resid_dropout.forward(this.mlp.forward(this.post_attention_layernorm.forward(x))));
  }

  forwardCached(x: Tensor, kv: KVLayer, positions: Int32Array): Tensor {
    x = add(x, this.self_attn.forwardCached(this.input_layernorm.forward(x), kv, positions));
    return add(x, this.mlp.forward(this.post_attention_layernorm.forward(x)));
  }
}

/** The decoder stack without its output head (Hugging Face's LlamaModel). */
export class LlamaModel extends Module {
  embed_tokens: Embedding;
  layers: LlamaDecoderLayer[];
  norm: RMSNorm;

  constructor(c: LlamaConfig, rng: Rng) {
    super();
    this.embed_tokens = new Embedding(c.vocab_size, c.n_embd, { std: INIT_STD, rng });
    this.layers = Array.from({ length: c.n_layer }, () => new LlamaDecoderLayer(c, rng));
    this.norm = new RMSNorm(c.n_embd, { eps: c.rms_norm_eps });
  }
}

/**
 * A Llama-family decoder (Llama, Qwen2, Mistral): token embedding, N
 * decoder layers (RMSNorm, grouped-query attention with rotary positions,
 * SwiGLU MLP), a final RMSNorm and an output head, tied to the embedding or
 * its own. The module tree mirrors Hugging Face's LlamaForCausalLM, so
 * parameter names are the checkpoint's (`model.layers.0.self_attn.q_proj.weight`).
 */
export class Llama extends Module implements CausalLM {
  model: LlamaModel;
  /** The output head; null when tied to model.embed_tokens. */
  lm_head: Linear | null;
  readonly config: LlamaConfig;
  /** Drives initialisation, then dropout. */
  readonly rng: Rng;

  constructor(config: LlamaConfig, rng: Rng = new Rng(1337)) {
    super();
    this.config = config;
    this.rng = rng;
    this.model = new LlamaModel(config, rng);
    this.lm_head = config.tie_word_embeddings ? null : new Linear(config.n_embd, config.vocab_size, { bias: false, std: INIT_STD, rng });
  }

  forward(ids: Int32Array, [B, T]: [number, number], targets?: Int32Array): CausalLMOutput {
    const logits = this.head(this.hidden(ids, [B, T]));
    const loss = targets ? crossEntropy(logits, targets) : null;
    return { logits, loss };
  }

  nextTokenLogits(ids: Int32Array, [B, T]: [number, number]): Tensor {
    const x = slice(this.hidden(ids, [B, T]), 1, T - 1, T);
    return reshape(this.head(x), [B, this.config.vocab_size]);
  }

  forwardCached(ids: Int32Array, [B, T]: [number, number], cache: KVCacheLike): Tensor {
    if (ids.length !== B * T) throw new Error(`expected ${B}×${T} ids, got ${ids.length}`);
    const channels = this.config.n_head * this.config.head_dim;
    const kv0 = cache.layers[0]!;
    if (kv0.k.length !== B * kv0.cap * channels) {
      // PROVISIONAL: the cache holds keys and values repeated per query head, n_head·head_dim wide.
      throw new Error(`KV cache rows of ${kv0.k.length / (B * kv0.cap)} channels; this model needs ${channels} (n_head·head_dim)`);
    }
    const positions = new Int32Array(B * T);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) positions[b * T + t] = cache.position(b, cache.length + t);
    let x = this.model.embed_tokens.forward(ids, [B, T]);
    this.model.layers.forEach((layer, i) => (x = layer.forwardCached(x, cache.layers[i]!, positions)));
    cache.advance(T);
    x = this.model.norm.forward(T === 1 ? x : slice(x, 1, T - 1, T));
    return reshape(this.head(x), [B, this.config.vocab_size]);
  }

  /** Scores over the vocabulary: lm_head, or the embedding matrix when tied. */
  private head(x: Tensor): Tensor {
    return this.lm_head ? this.lm_head.forward(x) : linear(x, this.model.embed_tokens.weight);
  }

  private hidden(ids: Int32Array, [B, T]: [number, number]): Tensor {
    if (T > this.config.block_size) throw new Error(`sequence of ${T} tokens exceeds block_size ${this.config.block_size}`);
    if (ids.length !== B * T) throw new Error(`expected ${B}×${T} ids, got ${ids.length}`);
    const positions = Int32Array.from({ length: T }, (_, i) => i);
    let x = this.model.embed_tokens.forward(ids, [B, T]);
    for (const layer of this.model.layers) x = layer.forward(x, positions);
    return this.model.norm.forward(x);
  }
}
