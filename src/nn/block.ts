import type { KVLayer } from '../tensor/ops/attention.js';
import { add } from '../tensor/ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { CausalSelfAttention, type AttentionConfig } from './attention.js';
import { LayerNorm } from './layernorm.js';
import { MLP } from './mlp.js';
import { Module } from './module.js';

/**
 * One transformer block, pre-norm (GPT-2): x + attn(ln(x)), then x + mlp(ln(x)).
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

  /** positions: only RoPE attention reads them (see CausalSelfAttention). */
  forward(x: Tensor, positions?: Int32Array): Tensor {
    x = add(x, this.attn.forward(this.ln_1.forward(x), positions));
    x = add(x, this.mlp.forward(this.ln_2.forward(x)));
    return x;
  }

  /** The same block for new positions during generation, attending through the KV cache. */
  forwardCached(x: Tensor, kv: KVLayer, positions?: Int32Array): Tensor {
    x = add(x, this.attn.forwardCached(this.ln_1.forward(x), kv, positions));
    return add(x, this.mlp.forward(this.ln_2.forward(x)));
  }
}
