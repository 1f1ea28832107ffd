import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { MultiHeadAttention, type Attend } from './attention.js';
import type { EncoderLayerConfig } from './encoder_layer.js';
import { FeedForward } from './feed_forward.js';
import { LayerNorm } from './layernorm.js';
import { Module } from './module.js';
import { residual, type NormPlacement } from './residual.js';

export type DecoderLayerConfig = EncoderLayerConfig;

export interface DecoderMasks {
  /** B·Tt flags, 1 where a target position is padding. */
  tgtPadding?: Uint8Array;
  /** B·Ts flags, 1 where a source position (of memory) is padding. */
  srcPadding?: Uint8Array;
  /** Replaces the cross-attention op (e.g. to keep its weights for display). */
  crossAttend?: Attend;
  /** Replaces the causal self-attention op (eval/inspect/ reads or removes heads through it). */
  selfAttend?: Attend;
}

/**
 * One decoder layer of "Attention Is All You Need": masked (causal)
 * self-attention over the target so far, then cross-attention in which each
 * target position queries the encoder's output (memory), then a
 * feed-forward — each sublayer wrapped in Add & Norm.
 */
export class DecoderLayer extends Module {
  self_attn: MultiHeadAttention;
  norm1: LayerNorm;
  cross_attn: MultiHeadAttention;
  norm2: LayerNorm;
  ff: FeedForward;
  norm3: LayerNorm;
  readonly norm: NormPlacement;

  constructor(cfg: DecoderLayerConfig, rng: Rng) {
    super();
    const attn = { d_model: cfg.d_model, n_head: cfg.n_head, dropout: cfg.dropout, bias: cfg.bias };
    const ln = (): LayerNorm => new LayerNorm(cfg.d_model, { bias: cfg.bias ?? true });
    this.self_attn = new MultiHeadAttention({ ...attn, causal: true, rope: cfg.rope }, rng);
    this.norm1 = ln();
    // Source and target positions are in different sequences: rotary positions would relate unrelated indices.
    this.cross_attn = new MultiHeadAttention(attn, rng);
    this.norm2 = ln();
    this.ff = new FeedForward(cfg, rng);
    this.norm3 = ln();
    this.norm = cfg.norm;
  }

  /** x [B, Tt, C] (target so far), memory [B, Ts, C] (the encoder's output, the same for every layer). */
  forward(x: Tensor, memory: Tensor, masks: DecoderMasks = {}): Tensor {
    x = residual(x, this.norm1, this.norm, (h, skip) => this.self_attn.forward(h, { keyPadding: masks.tgtPadding, attend: masks.selfAttend }, skip));
    x = residual(x, this.norm2, this.norm, (h, skip) => this.cross_attn.forward(h, { memory, keyPadding: masks.srcPadding, attend: masks.crossAttend }, skip));
    return residual(x, this.norm3, this.norm, (h, skip) => this.ff.forward(h, skip));
  }
}
