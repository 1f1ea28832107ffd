import { attention, attentionWeights } from '../tensor/ops/attention.js';
import { noGrad } from '../tensor/autograd.js';
import { rope } from '../tensor/ops/rope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { Dropout } from './dropout.js';
import { Linear } from './linear.js';
import { Module } from './module.js';

export interface MultiHeadAttentionConfig {
  d_model: number;
  n_head: number;
  dropout: number;
  bias?: boolean;
  /** Each position sees only itself and earlier ones (decoder self-attention). */
  causal?: boolean;
  /** Rotate queries and keys by position (self-attention only; ops/rope.ts). */
  rope?: boolean;
}

export interface AttendOptions {
  /** B·Tk flags, 1 where a key (a position of `memory`) is padding. */
  keyPadding?: Uint8Array;
  /** Keep the attention weights in `lastWeights` (e.g. to show cross-attention). */
  keepWeights?: boolean;
}

/**
 * Multi-head attention in the encoder–decoder form: queries from x, keys and
 * values from `memory`. Self-attention is memory = x; cross-attention is x =
 * the decoder's positions, memory = the encoder's output, so each target word
 * can look back at every source word.
 */
export class MultiHeadAttention extends Module {
  q_proj: Linear;
  k_proj: Linear;
  v_proj: Linear;
  out_proj: Linear;
  dropout: Dropout;
  readonly nHead: number;
  readonly causal: boolean;
  readonly rope: boolean;
  /** [B, nHead, Tq, Tk] from the last forward with keepWeights. */
  lastWeights: Float32Array | null = null;

  constructor(cfg: MultiHeadAttentionConfig, rng: Rng) {
    super();
    const std = Math.sqrt(1 / cfg.d_model);
    const lin = () => new Linear(cfg.d_model, cfg.d_model, { bias: cfg.bias ?? true, std, rng });
    this.q_proj = lin();
    this.k_proj = lin();
    this.v_proj = lin();
    this.out_proj = lin();
    this.dropout = new Dropout(cfg.dropout, rng);
    this.nHead = cfg.n_head;
    this.causal = cfg.causal ?? false;
    this.rope = cfg.rope ?? false;
  }

  forward(x: Tensor, memory: Tensor = x, opts: AttendOptions = {}): Tensor {
    let q = this.q_proj.forward(x);
    let k = this.k_proj.forward(memory);
    const v = this.v_proj.forward(memory);
    if (this.rope) {
      if (memory !== x) throw new Error('rope applies to self-attention only');
      q = rope(q, this.nHead);
      k = rope(k, this.nHead);
    }
    return this.out_proj.forward(this.dropout.forward(this.attend(q, k, v, memory === x, opts)));
  }

  private attend(q: Tensor, k: Tensor, v: Tensor, self: boolean, opts: AttendOptions): Tensor {
    // Self or cross, padded or not: one fused op. The weights are recomputed for display only when asked.
    const o = { nHead: this.nHead, causal: this.causal, keyPadding: opts.keyPadding };
    this.lastWeights = opts.keepWeights ? noGrad(() => attentionWeights(q, k, o)) : null;
    return attention(q, k, v, o);
  }
}
