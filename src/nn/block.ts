import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { CausalSelfAttention, type AttentionCall, type AttentionConfig } from './attention.js';
import { MLP } from './feed_forward.js';
import { LayerNorm } from './layernorm.js';
import { Module } from './module.js';
import { residual } from './residual.js';

/**
 * One GPT-2 transformer block, pre-norm: x + attn(ln_1(x)), then x + mlp(ln_2(x)).
 * The residual additions give gradients a direct path through every layer.
 */
export class Block extends Module {
  ln_1: LayerNorm;
  attn: CausalSelfAttention;
  ln_2: LayerNorm;
  mlp: MLP;

  constructor(cfg: AttentionConfig & { layer_norm_epsilon: number }, rng: Rng) {
    super();
    this.ln_1 = new LayerNorm(cfg.n_embd, { bias: cfg.bias, eps: cfg.layer_norm_epsilon });
    this.attn = new CausalSelfAttention(cfg, rng);
    this.ln_2 = new LayerNorm(cfg.n_embd, { bias: cfg.bias, eps: cfg.layer_norm_epsilon });
    this.mlp = new MLP(cfg, rng);
  }

  /** call: positions for RoPE, and an `attend` that replaces the attention op (KV-cached generation). */
  forward(x: Tensor, call: AttentionCall = {}): Tensor {
    x = residual(x, this.ln_1, 'pre', (h, skip) => this.attn.forward(h, call, skip));
    return residual(x, this.ln_2, 'pre', (h, skip) => this.mlp.forward(h, skip));
  }
}
