import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { MultiHeadAttention, type Attend } from './attention.js';
import { FeedForward, type Activation } from './feed_forward.js';
import { LayerNorm } from './layernorm.js';
import { Module } from './module.js';
import { residual, type NormPlacement } from './residual.js';

export interface EncoderLayerConfig {
  d_model: number;
  n_head: number;
  d_ff: number;
  dropout: number;
  norm: NormPlacement;
  activation: Activation;
  bias?: boolean;
  rope?: boolean;
}

/** One encoder layer: every position attends to every (non-padding) position, then a feed-forward. */
export class EncoderLayer extends Module {
  self_attn: MultiHeadAttention;
  norm1: LayerNorm;
  ff: FeedForward;
  norm2: LayerNorm;
  readonly norm: NormPlacement;

  constructor(cfg: EncoderLayerConfig, rng: Rng) {
    super();
    this.self_attn = new MultiHeadAttention({ d_model: cfg.d_model, n_head: cfg.n_head, dropout: cfg.dropout, bias: cfg.bias, rope: cfg.rope }, rng);
    this.norm1 = new LayerNorm(cfg.d_model, { bias: cfg.bias ?? true });
    this.ff = new FeedForward(cfg, rng);
    this.norm2 = new LayerNorm(cfg.d_model, { bias: cfg.bias ?? true });
    this.norm = cfg.norm;
  }

  /**
   * x [B, T, C]; keyPadding: B·T flags, 1 = padding (attended by nobody);
   * attend replaces the attention op (eval/inspect/ reads or removes heads through it).
   */
  forward(x: Tensor, keyPadding?: Uint8Array, attend?: Attend): Tensor {
    x = residual(x, this.norm1, this.norm, (h, skip) => this.self_attn.forward(h, { keyPadding, attend }, skip));
    return residual(x, this.norm2, this.norm, (h, skip) => this.ff.forward(h, skip));
  }
}
