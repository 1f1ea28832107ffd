
import { attention, packedAttention, type AttentionOptions } from '../tensor/ops/attention.js';
import { rope, type RopeOptions } from '../tensor/ops/rope.js';
import { slice } from '../tensor/ops/shape.js';
import { isGradEnabled } from '../tensor/autograd.js';
import { Tensor, viewStorage } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { Dropout } from './dropout.js';
import { joinedLinear, type JoinsProjections } from './joined_linear.js';
import { Linear } from './linear.js';
import { Module } from './module.js';
import type { LinearLayer } from './quantized_linear.js';
import { projectInto } from './residual.js';

/**
 * Positions that enter attention by rotating queries and keys (RoPE) rather
 * than by adding vectors to the input. An object, so that other conventions
 * (Hugging Face's rotate_half, rope_theta, scaled frequencies) plug in here.
 */
export interface PositionRotation {
  /** x [B, T, heads·D] rotated to its positions: T entries shared by the rows, or B·T; default 0 … T−1. */
  rotate(x: Tensor, heads: number, positions?: Int32Array): Tensor;
}

/** RoPE with interleaved channel pairs (2i, 2i+1), base 10000: attn's `--positions rope` (ops/rope.ts). */
export const interleavedRope: PositionRotation = { rotate: (x, heads, positions) => rope(x, heads, positions) };

/** RoPE with other options: Hugging Face's rotate_half layout, rope_theta, scaled frequencies (the Llama family). */
export function ropeRotation(options: RopeOptions): PositionRotation {
  return { rotate: (x, heads, positions) => rope(x, heads, positions, options) };
}

/**
 * Replaces the attention op for one call: q, k, v after the projections and
 * the rotation, and the options the op would have been given. Generation
 * passes one that writes keys and values into its KV cache and attends over
 * it (src/generate/); a display passes one that keeps the weights.
 */
export type Attend = (q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions) => Tensor;

/** What one call of an attention layer may add to its input. */
export interface AttentionCall {
  /** Cross-attention: keys and values come from here (the encoder's output), queries from x. */
  memory?: Tensor;
  /** B·Tk flags, 1 where a key is padding: nobody attends to it. */
  keyPadding?: Uint8Array;
  /** Positions of x's slots, for the rotation (T shared, or B·T). */
  positions?: Int32Array;
  attend?: Attend;
}

export interface AttentionLayerOptions {
  nHead: number;
  /** Heads of keys and values (grouped-query attention: each serves nHead / nKvHead query heads). Default nHead. */
  nKvHead?: number;
  /** Each position sees only itself and earlier ones. */
  causal?: boolean;
  /** Dropout on the attention probabilities, while training. */
  attnDropout?: number;
  /** Dropout on the layer's output, before it joins the residual stream. */
  residDropout?: number;
  rotation?: PositionRotation | null;
}

/** Queries, keys and values from the projections: one packed tensor, or three. */
export type Projected = { qkv: Tensor } | { q: Tensor; k: Tensor; v: Tensor };

/**
 * Multi-head attention. Each position makes a query ("what am I looking
 * for"), a key ("what do I contain") and a value ("what I pass on"); a
 * position's output is the average of the values weighted by
 * softmax(q·k/√d) over the positions it may see. Several heads do this in
 * parallel on slices of the vector, and the output projection mixes their
 * results back together.
 *
 * This class is the whole computation; a subclass only names its projections
 * (the names checkpoints use) and says how x becomes q, k, v:
 * CausalSelfAttention (GPT-2: c_attn, c_proj) and MultiHeadAttention (q_proj,
 * k_proj, v_proj, out_proj). A Llama-style layer is the same with o_proj.
 */
export abstract class AttentionLayer extends Module {
  readonly nHead: number;
  readonly nKvHead: number;
  readonly causal: boolean;
  readonly attnDropout: number;
  readonly rotation: PositionRotation | null;
  resid_dropout: Dropout;
  private readonly rng: Rng;

  constructor(o: AttentionLayerOptions, rng: Rng) {
    super();
    this.nHead = o.nHead;
    this.nKvHead = o.nKvHead ?? o.nHead;
    if (this.nHead % this.nKvHead !== 0) throw new Error(`${this.nHead} query heads do not share ${this.nKvHead} key/value heads evenly`);
    this.causal = o.causal ?? false;
    this.attnDropout = o.attnDropout ?? 0;
    this.rotation = o.rotation ?? null;
    this.resid_dropout = new Dropout(o.residDropout ?? 0, rng);
    this.rng = rng;
  }

  /** x → queries, keys, values (keys and values from `memory` in cross-attention). */
  protected abstract project(x: Tensor, memory: Tensor | null): Projected;
  /** The projection that mixes the heads' outputs. */
  protected abstract get output(): LinearLayer;

  /** x [B, T, C] → [B, T, C]; given `skip` (the residual stream), skip + that (residual.ts's projectInto). */
  forward(x: Tensor, call: AttentionCall = {}, skip: Tensor | null = null): Tensor {
    const memory = call.memory ?? null;
    if (memory && this.rotation) throw new Error('rotary positions apply to self-attention only');
    const o = this.options(call.keyPadding);
    const p = this.project(x, memory);
    let y: Tensor;
    if ('qkv' in p && !this.rotation && !call.attend) {
      // q, k and v read in place from the packed projection: the same as splitting it, without copying.
      y = packedAttention(p.qkv, o);
    } else {
      let [q, k, v] = 'qkv' in p ? this.unpack(p.qkv) : [p.q, p.k, p.v];
      if (this.rotation) [q, k] = [this.rotation.rotate(q, this.nHead, call.positions), this.rotation.rotate(k, this.nKvHead, call.positions)];
      y = (call.attend ?? attention)(q, k, v, o);
    }
    return projectInto(this.output, y, this.resid_dropout, skip);
  }

  /** The attention op's options for this layer (dropout only while training). */
  options(keyPadding?: Uint8Array): AttentionOptions {
    const dropout = this.training && this.attnDropout > 0 ? { p: this.attnDropout, rng: this.rng } : null;
    return { nHead: this.nHead, nKvHead: this.nKvHead, causal: this.causal, keyPadding, dropout };
  }

  /**
   * [B, T, (nHead + 2·nKvHead)·D] → q, k, v. One row outside a graph
   * (decoding one token) needs no copies: each part is a contiguous run of
   * the packed row, and a view of it serves, since q, k and v are only read
   * (stored into the cache, attended with). That saves three kernel launches
   * a layer on a device backend.
   */
  private unpack(qkv: Tensor): [Tensor, Tensor, Tensor] {
    const width = qkv.shape[2]!;
    const D = width / (this.nHead + 2 * this.nKvHead);
    const [nq, nk] = [this.nHead * D, this.nKvHead * D];
    const parts: [number, number][] = [[0, nq], [nq, nq + nk], [nq + nk, nq + 2 * nk]];
    const oneRow = qkv.size === width && !isGradEnabled();
    const part = ([a, b]: [number, number]) => (oneRow ? new Tensor(viewStorage(qkv.storage, a, b - a), [...qkv.shape.slice(0, 2), b - a]) : slice(qkv, 2, a, b));
    return [part(parts[0]!), part(parts[1]!), part(parts[2]!)];
  }
}

/** The GPT's sizes, as its config names them. */
export interface AttentionConfig {
  n_embd: number;
  n_head: number;
  n_layer: number;
  dropout: number;
  bias: boolean;
  position_encoding?: 'learned' | 'rope';
}

/** GPT-2's masked self-attention: q, k, v from one projection c_attn (as in its checkpoints), then c_proj. */
export class CausalSelfAttention extends AttentionLayer {
  c_attn: LinearLayer;
  c_proj: LinearLayer;

  constructor(cfg: AttentionConfig, rng: Rng) {
    super({ nHead: cfg.n_head, causal: true, attnDropout: cfg.dropout, residDropout: cfg.dropout, rotation: cfg.position_encoding === 'rope' ? interleavedRope : null }, rng);
    this.c_attn = new Linear(cfg.n_embd, 3 * cfg.n_embd, { bias: cfg.bias, std: 0.02, rng });
    // GPT-2 scales residual projections by 1/√(2·layers) so the residual stream's variance does not grow with depth.
    this.c_proj = new Linear(cfg.n_embd, cfg.n_embd, { bias: cfg.bias, std: 0.02 / Math.sqrt(2 * cfg.n_layer), rng });
  }

  protected project(x: Tensor): Projected {
    return { qkv: this.c_attn.forward(x) };
  }

  protected get output(): LinearLayer {
    return this.c_proj;
  }
}

export interface MultiHeadAttentionConfig {
  d_model: number;
  n_head: number;
  n_kv_head?: number;
  dropout: number;
  bias?: boolean;
  /** Each position sees only itself and earlier ones (decoder self-attention). */
  causal?: boolean;
  /** Rotate queries and keys by position (self-attention only). */
  rope?: boolean;
}

/**
 * Attention with separate projections q_proj, k_proj, v_proj, out_proj (the
 * encoder–decoder Transformer, ViT, the embedder). Self-attention is
 * memory = x; in cross-attention x is the decoder's positions and memory the
 * encoder's output, so each target word can look back at every source word.
 */
export class MultiHeadAttention extends AttentionLayer implements JoinsProjections {
  q_proj: LinearLayer;
  k_proj: LinearLayer;
  v_proj: LinearLayer;
  out_proj: LinearLayer;

  constructor(cfg: MultiHeadAttentionConfig, rng: Rng) {
    super({ nHead: cfg.n_head, nKvHead: cfg.n_kv_head, causal: cfg.causal, attnDropout: cfg.dropout, residDropout: cfg.dropout, rotation: cfg.rope ? interleavedRope : null }, rng);
    const std = Math.sqrt(1 / cfg.d_model);
    const kv = (cfg.d_model / cfg.n_head) * (cfg.n_kv_head ?? cfg.n_head);
    const lin = (out: number) => new Linear(cfg.d_model, out, { bias: cfg.bias ?? true, std, rng });
    this.q_proj = lin(cfg.d_model);
    this.k_proj = lin(kv);
    this.v_proj = lin(kv);
    this.out_proj = lin(cfg.d_model);
  }

  /** In self-attention q_proj, k_proj and v_proj read the same x: on a device, one product when their weights adjoin (joined_linear.ts). */
  get joinable(): LinearLayer[][] {
    return [[this.q_proj, this.k_proj, this.v_proj]];
  }

  protected project(x: Tensor, memory: Tensor | null): Projected {
    const qkv = memory ? null : joinedLinear([this.q_proj, this.k_proj, this.v_proj]);
    if (qkv) return { qkv: qkv.forward(x) };
    const m = memory ?? x;
    return { q: this.q_proj.forward(x), k: this.k_proj.forward(m), v: this.v_proj.forward(m) };
  }

  protected get output(): LinearLayer {
    return this.out_proj;
  }
}
