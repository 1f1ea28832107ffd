import { AttentionLayer, ropeRotation, type AttentionCall, type Projected } from '../nn/attention.js';
import { joinedLinear, type JoinsProjections } from '../nn/joined_linear.js';
import { Embedding } from '../nn/embedding.js';
import { GatedFeedForward } from '../nn/feed_forward.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import type { LinearLayer } from '../nn/quantized_linear.js';
import { residual } from '../nn/residual.js';
import { RMSNorm } from '../nn/rmsnorm.js';
import { TiedLinear } from '../nn/tied_linear.js';
import type { TokenIds } from '../tensor/stored_ids.js';
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import { DecoderLM, scoredPositions, slotPositions, type ForwardOptions } from './causal_lm.js';
import type { LlamaConfig } from './llama_config.js';

/** Hugging Face's initializer_range: every weight matrix starts as N(0, 0.02²). */
const INIT_STD = 0.02;

/**
 * Grouped-query self-attention as in Hugging Face's LlamaAttention: n_head
 * query heads and n_kv_head key/value heads, each key/value head shared by
 * n_head / n_kv_head consecutive query heads (read in place by the attention
 * kernels, never copied); queries and keys rotated by position (RoPE in the
 * rotate_half layout, rope_theta, rope_scaling). The computation is the shared
 * AttentionLayer's; this class only names the projections as checkpoints do.
 */
export class LlamaAttention extends AttentionLayer implements JoinsProjections {
  q_proj: LinearLayer;
  k_proj: LinearLayer;
  v_proj: LinearLayer;
  o_proj: LinearLayer;

  constructor(c: LlamaConfig, rng: Rng) {
    const rotation = ropeRotation({ base: c.rope_theta, layout: 'half', scaling: c.rope_scaling });
    super({ nHead: c.n_head, nKvHead: c.n_kv_head, causal: true, attnDropout: c.dropout, rotation }, rng);
    const q = c.n_head * c.head_dim;
    const kv = c.n_kv_head * c.head_dim;
    this.q_proj = new Linear(c.n_embd, q, { bias: c.attention_bias, std: INIT_STD, rng });
    this.k_proj = new Linear(c.n_embd, kv, { bias: c.attention_bias, std: INIT_STD, rng });
    this.v_proj = new Linear(c.n_embd, kv, { bias: c.attention_bias, std: INIT_STD, rng });
    this.o_proj = new Linear(q, c.n_embd, { bias: c.attention_out_bias, std: INIT_STD, rng });
  }

  /** q_proj, k_proj and v_proj read the same x: on a device, one product when their weights adjoin (nn/joined_linear.ts). */
  get joinable(): LinearLayer[][] {
    return [[this.q_proj, this.k_proj, this.v_proj]];
  }

  protected project(x: Tensor): Projected {
    const qkv = joinedLinear([this.q_proj, this.k_proj, this.v_proj]);
    if (qkv) return { qkv: qkv.forward(x) };
    return { q: this.q_proj.forward(x), k: this.k_proj.forward(x), v: this.v_proj.forward(x) };
  }

  protected get output(): LinearLayer {
    return this.o_proj;
  }
}

/** One pre-norm decoder layer: x + attn(RMSNorm(x)), then x + SwiGLU(RMSNorm(x)). */
export class LlamaDecoderLayer extends Module {
  input_layernorm: RMSNorm;
  self_attn: LlamaAttention;
  post_attention_layernorm: RMSNorm;
  mlp: GatedFeedForward;

  constructor(c: LlamaConfig, rng: Rng) {
    super();
    this.input_layernorm = new RMSNorm(c.n_embd, { eps: c.rms_norm_eps });
    this.self_attn = new LlamaAttention(c, rng);
    this.post_attention_layernorm = new RMSNorm(c.n_embd, { eps: c.rms_norm_eps });
    // SwiGLU (Shazeer 2020): down(silu(gate(x)) · up(x)); the gate decides per hidden unit how much of up(x) passes.
    this.mlp = new GatedFeedForward({ d_model: c.n_embd, d_ff: c.intermediate_size, activation: 'silu', bias: c.mlp_bias, dropout: c.dropout, std: INIT_STD }, rng);
  }

  forward(x: Tensor, call: AttentionCall = {}): Tensor {
    x = residual(x, this.input_layernorm, 'pre', (h, skip) => this.self_attn.forward(h, call, skip));
    return residual(x, this.post_attention_layernorm, 'pre', (h, skip) => this.mlp.forward(h, skip));
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
 * A Llama-family decoder (Llama, Qwen2, Mistral): token embedding, N decoder
 * layers (RMSNorm, grouped-query attention with rotary positions, SwiGLU),
 * a final RMSNorm and an output head, tied to the embedding or its own. The
 * module tree mirrors Hugging Face's LlamaForCausalLM, so parameter names are
 * the checkpoint's (`model.layers.0.self_attn.q_proj.weight`). It differs from
 * models/gpt.ts only in its parts: the layers are the same shared ones.
 */
export class Llama extends DecoderLM {
  model: LlamaModel;
  /** The output head: its own matrix, or the embedding's when tied. */
  lm_head: LinearLayer | TiedLinear;
  readonly config: LlamaConfig;
  /** Drives initialisation, then dropout. */
  readonly rng: Rng;

  constructor(config: LlamaConfig, rng: Rng = new Rng(1337)) {
    super();
    this.config = config;
    this.rng = rng;
    this.model = new LlamaModel(config, rng);
    this.lm_head = config.tie_word_embeddings
      ? new TiedLinear(() => this.model.embed_tokens.weight)
      : new Linear(config.n_embd, config.vocab_size, { bias: false, std: INIT_STD, rng });
  }

  protected tokenTable(): Module {
    return this.model.embed_tokens;
  }

  /** The final hidden states (after the last RMSNorm), for the positions `opts` selects. */
  hidden(ids: TokenIds, [B, T]: [number, number], opts: ForwardOptions = {}): Tensor {
    const positions = slotPositions(ids, [B, T], opts, this.config.block_size);
    let x = this.model.embed_tokens.forward(ids, [B, T]);
    this.model.layers.forEach((layer, i) => {
      const attend = opts.attend && ((q: Tensor, k: Tensor, v: Tensor, o: Parameters<NonNullable<ForwardOptions['attend']>>[4]) => opts.attend!(i, q, k, v, o));
      x = this.throughBlock(x, (h) => layer.forward(h, { positions, attend }));
    });
    return this.model.norm.forward(scoredPositions(x, [B, T], opts));
  }
}
