import { Block } from '../nn/block.js';
import { Dropout } from '../nn/dropout.js';
import { Embedding } from '../nn/embedding.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Module } from '../nn/module.js';
import { crossEntropy } from '../tensor/ops/cross_entropy.js';
import { add } from '../tensor/ops/elementwise.js';
import { linear } from '../tensor/ops/linear.js';
import type { KVLayer } from '../tensor/ops/attention.js';
import { linearInt8, type Int8Weight } from '../tensor/ops/linear_int8.js';
import { reshape, slice } from '../tensor/ops/shape.js';
import { isGradEnabled } from '../tensor/autograd.js';
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import type { GPTConfig } from './gpt_config.js';

/** What forwardCached needs from a KV cache (src/generate/kv_cache.ts). */
export interface KVCacheLike {
  layers: KVLayer[];
  length: number;
  position(row: number, slot: number): number;
  advance(n: number): void;
}

export interface GPTOutput {
  /** [B, T, vocab] scores for the next token at every position. */
  logits: Tensor;
  /** Mean cross-entropy against the targets, when targets were given. */
  loss: Tensor | null;
}

/**
 * The GPT decoder: token embedding + position embedding, N blocks, a final
 * LayerNorm, and an output head that reuses the token embedding matrix
 * ("weight tying": the same vectors read tokens in and score them out).
 */
export class GPT extends Module {
  wte: Embedding;
  /** Learned position vectors; null with RoPE, which rotates queries and keys instead. */
  wpe: Embedding | null;
  drop: Dropout;
  h: Block[];
  ln_f: LayerNorm;
  readonly config: GPTConfig;
  /** The output head quantized to int8 (nn/int8.ts), used for inference when set. */
  headInt8: Int8Weight | null = null;
  /** Drives initialisation, then dropout; saved with training state so resuming is exact. */
  readonly rng: Rng;

  constructor(config: GPTConfig, rng: Rng = new Rng(1337)) {
    super();
    this.config = config;
    this.rng = rng;
    this.wte = new Embedding(config.vocab_size, config.n_embd, { std: 0.02, rng });
    this.wpe = config.position_encoding === 'rope' ? null : new Embedding(config.block_size, config.n_embd, { std: 0.02, rng });
    this.drop = new Dropout(config.dropout, rng);
    this.h = Array.from({ length: config.n_layer }, () => new Block(config, rng));
    this.ln_f = new LayerNorm(config.n_embd, { bias: config.bias, eps: config.layer_norm_epsilon });
  }

  /** ids: B·T token ids (row-major); targets, if given, the next token at each position. */
  forward(ids: Int32Array, [B, T]: [number, number], targets?: Int32Array): GPTOutput {
    const x = this.hidden(ids, [B, T]);
    const logits = this.head(x);
    const loss = targets ? crossEntropy(logits, targets) : null;
    return { logits, loss };
  }

  /** Scores for the token after the last position only: sampling needs nothing else. */
  nextTokenLogits(ids: Int32Array, [B, T]: [number, number]): Tensor {
    const x = slice(this.hidden(ids, [B, T]), 1, T - 1, T);
    return reshape(this.head(x), [B, this.config.vocab_size]);
  }

  /**
   * Generation with a KV cache: run T new tokens per row (the prompt, then one
   * at a time) at the cache's next slots, reading earlier positions' keys and
   * values from it and appending the new ones. Returns [B, vocab] scores for
   * the token after each row's last new position.
   */
  forwardCached(ids: Int32Array, [B, T]: [number, number], cache: KVCacheLike): Tensor {
    if (ids.length !== B * T) throw new Error(`expected ${B}×${T} ids, got ${ids.length}`);
    const positions = new Int32Array(B * T);
    for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) positions[b * T + t] = cache.position(b, cache.length + t);
    let x = this.embed(ids, [B, T], positions);
    this.h.forEach((block, i) => (x = block.forwardCached(x, cache.layers[i]!, positions)));
    cache.advance(T);
    x = this.ln_f.forward(T === 1 ? x : slice(x, 1, T - 1, T));
    return reshape(this.head(x), [B, this.config.vocab_size]);
  }

  /**
   * Token vectors, plus position vectors when they are learned. positions has
   * T entries (the same "where am I" signal broadcast over the rows) or B·T.
   */
  embed(ids: Int32Array, [B, T]: [number, number], positions: Int32Array): Tensor {
    const tokens = this.wte.forward(ids, [B, T]);
    if (!this.wpe) return tokens;
    return add(tokens, this.wpe.forward(positions, positions.length === T ? [1, T] : [B, T]));
  }

  /** Scores over the vocabulary from final hidden states: the tied embedding matrix, int8 when quantized. */
  private head(x: Tensor): Tensor {
    if (this.headInt8 && !isGradEnabled()) return linearInt8(x, this.headInt8);
    return linear(x, this.wte.weight); // tied output head
  }

  private hidden(ids: Int32Array, [B, T]: [number, number]): Tensor {
    if (T > this.config.block_size) throw new Error(`sequence of ${T} tokens exceeds block_size ${this.config.block_size}`);
    if (ids.length !== B * T) throw new Error(`expected ${B}×${T} ids, got ${ids.length}`);
    const positions = Int32Array.from({ length: T }, (_, i) => i);
    let x = this.embed(ids, [B, T], positions);
    x = this.drop.forward(x);
    for (const block of this.h) x = block.forward(x, positions);
    return this.ln_f.forward(x);
  }
}
