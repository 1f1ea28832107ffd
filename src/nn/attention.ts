import { attention, cachedAttention, packedAttention, type AttentionOptions, type KVLayer } from '../tensor/ops/attention.js';
import { rope } from '../tensor/ops/rope.js';
import { split } from '../tensor/ops/shape.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { Dropout } from './dropout.js';
import { Linear } from './linear.js';
import { Module } from './module.js';

export interface AttentionConfig {
  n_embd: number;
  n_head: number;
  n_layer: number;
  dropout: number;
  bias: boolean;
  position_encoding?: 'learned' | 'rope';
}

/**
 * Multi-head causal self-attention. Each position makes a query ("what am I
 * looking for"), a key ("what do I contain") and a value ("what I pass on");
 * a position's output is the value average weighted by softmax(q·k/√d) over
 * itself and earlier positions. Several heads do this in parallel on slices
 * of the vector, and c_proj mixes their results back together.
 */
export class CausalSelfAttention extends Module {
  c_attn: Linear;
  c_proj: Linear;
  /** Dropout on the attention weights (GPT-2's attn_dropout), applied inside the attention op while training. */
  readonly attnDropout: number;
  resid_dropout: Dropout;
  readonly nHead: number;
  /** Rotate queries and keys by position (RoPE) instead of adding position vectors to the input. */
  readonly rope: boolean;
  private readonly rng: Rng;

  constructor(cfg: AttentionConfig, rng: Rng) {
    super();
    this.nHead = cfg.n_head;
    this.rope = cfg.position_encoding === 'rope';
    // q, k and v come from one projection of width 3C, as in GPT-2's checkpoints.
    this.c_attn = new Linear(cfg.n_embd, 3 * cfg.n_embd, { bias: cfg.bias, std: 0.02, rng });
    // GPT-2 scales residual projections by 1/√(2·layers) so the residual stream's variance does not grow with depth.
    this.c_proj = new Linear(cfg.n_embd, cfg.n_embd, { bias: cfg.bias, std: 0.02 / Math.sqrt(2 * cfg.n_layer), rng });
    this.attnDropout = cfg.dropout;
    this.rng = rng;
    this.resid_dropout = new Dropout(cfg.dropout, rng);
  }

  /** positions: T (shared by the rows) or B·T entries; needed only by RoPE (default 0 … T−1). */
  forward(x: Tensor, positions?: Int32Array): Tensor {
    // Without RoPE, q, k and v are read in place from c_attn's output (packedAttention):
    // the same as splitting it, without copying.
    // As in nanoGPT, dropout (while training) zeroes individual attention weights; the
    // kernels recompute its mask in the backward pass instead of storing it.
    const o: AttentionOptions = { nHead: this.nHead, causal: true, dropout: this.training && this.attnDropout > 0 ? { p: this.attnDropout, rng: this.rng } : null };
    const y = this.rope ? attention(...this.qkv(x, positions), o) : packedAttention(this.c_attn.forward(x), o);
    return this.resid_dropout.forward(this.c_proj.forward(y));
  }

  /** Generation: the same layer for new positions only, keys and values of earlier ones read from `kv`. */
  forwardCached(x: Tensor, kv: KVLayer, positions?: Int32Array): Tensor {
    const [q, k, v] = this.qkv(x, positions);
    return this.c_proj.forward(cachedAttention(q, k, v, kv, { nHead: this.nHead }));
  }

  /** Queries, keys and values of x, the queries and keys rotated to their positions under RoPE. */
  qkv(x: Tensor, positions?: Int32Array): [Tensor, Tensor, Tensor] {
    const [q, k, v] = split(this.c_attn.forward(x), 3, -1) as [Tensor, Tensor, Tensor];
    return this.rope ? [rope(q, this.nHead, positions), rope(k, this.nHead, positions), v] : [q, k, v];
  }
}
