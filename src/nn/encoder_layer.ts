import { add } from '../tensor/ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { Dropout } from './dropout.js';
import { FeedForward, type Activation } from './feed_forward.js';
import { LayerNorm } from './layernorm.js';
import { MultiHeadAttention } from './multihead_attention.js';
import { Module } from './module.js';

/**
 * Where LayerNorm sits. "post" is the paper's Add & Norm, LN(x + sublayer(x));
 * "pre" (GPT-2, ViT) is x + sublayer(LN(x)), which leaves the residual path
 * untouched and trains deep stacks without warm-up tricks.
 */
export type NormPlacement = 'pre' | 'post';

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

/** A residual sublayer with its LayerNorm, pre- or post-norm. */
export function addAndNorm(x: Tensor, norm: LayerNorm, placement: NormPlacement, sublayer: (h: Tensor) => Tensor): Tensor {
  return placement === 'pre' ? add(x, sublayer(norm.forward(x))) : norm.forward(add(x, sublayer(x)));
}

/** One encoder layer: every position attends to every (non-padding) position, then a feed-forward. */
export class EncoderLayer extends Module {
  self_attn: MultiHeadAttention;
  norm1: LayerNorm;
  ff: FeedForward;
  norm2: LayerNorm;
  dropout: Dropout;
  readonly norm: NormPlacement;

  constructor(cfg: EncoderLayerConfig, rng: Rng) {
    super();
    this.self_attn = new MultiHeadAttention({ d_model: cfg.d_model, n_head: cfg.n_head, dropout: cfg.dropout, bias: cfg.bias, rope: cfg.rope }, rng);
    this.norm1 = new LayerNorm(cfg.d_model, { bias: cfg.bias ?? true });
    this.ff = new FeedForward(cfg, rng);
    this.norm2 = new LayerNorm(cfg.d_model, { bias: cfg.bias ?? true });
    this.dropout = new Dropout(cfg.dropout, rng);
    this.norm = cfg.norm;
  }

  /** x [B, T, C]; keyPadding: B·T flags, 1 = padding (attended by nobody). */
  forward(x: Tensor, keyPadding?: Uint8Array): Tensor {
    x = addAndNorm(x, this.norm1, this.norm, (h) => this.dropout.forward(this.self_attn.forward(h, h, { keyPadding })));
    return addAndNorm(x, this.norm2, this.norm, (h) => this.dropout.forward(this.ff.forward(h)));
  }
}
