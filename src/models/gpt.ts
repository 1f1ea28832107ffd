import type { Attend } from '../nn/attention.js';
import { Block } from '../nn/block.js';
import { Dropout } from '../nn/dropout.js';
import { Embedding } from '../nn/embedding.js';
import { LayerNorm } from '../nn/layernorm.js';
import type { Module } from '../nn/module.js';
import type { QuantizedLinear } from '../nn/quantized_linear.js';
import { TiedLinear } from '../nn/tied_linear.js';
import { add } from '../tensor/ops/elementwise.js';
import { reshape, slice } from '../tensor/ops/shape.js';
import type { TokenIds } from '../tensor/stored_ids.js';
import { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import type { GPTConfig } from './gpt_config.js';
import { DecoderLM, scoredPositions, slotPositions, type ForwardOptions } from './causal_lm.js';

export type { ForwardOptions, LayerAttend } from './causal_lm.js';

export interface GPTOutput {
  /** [B, T, vocab] scores for the next token at every position ([B, vocab] with `last`, [rows, vocab] with `rows`). */
  logits: Tensor;
  /** Mean cross-entropy against the targets, when targets were given. */
  loss: Tensor | null;
}

/**
 * The GPT decoder: token embedding + position embedding, N blocks, a final
 * LayerNorm, and an output head that reuses the token embedding matrix
 * ("weight tying": the same vectors read tokens in and score them out).
 */
export class GPT extends DecoderLM {
  wte: Embedding;
  /** Learned position vectors; null with RoPE, which rotates queries and keys instead. */
  wpe: Embedding | null;
  drop: Dropout;
  h: Block[];
  ln_f: LayerNorm;
  /** The output head: wte's matrix (tied), or its own int8 copy once quantized (nn/quantized_linear.ts). */
  lm_head: TiedLinear | QuantizedLinear;
  readonly config: GPTConfig;
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
    this.lm_head = new TiedLinear(() => this.wte.weight);
  }

  protected tokenTable(): Module {
    return this.wte;
  }

  /**
   * The final hidden states (after ln_f: what the head reads), [B, T, C], or
   * only the positions `last` / `rows` select. The one forward path: training,
   * sampling and cached generation (whose `attend` reads the KV cache) all come here.
   */
  hidden(ids: TokenIds, [B, T]: [number, number], opts: ForwardOptions = {}): Tensor {
    const positions = slotPositions(ids, [B, T], opts, this.config.block_size);
    let x = this.drop.forward(this.embed(ids, [B, T], positions));
    this.h.forEach((block, i) => {
      const attend: Attend | undefined = opts.attend && ((q, k, v, o) => opts.attend!(i, q, k, v, o));
      x = this.throughBlock(x, (h) => block.forward(h, { positions, attend }));
    });
    // The final norm works on each position alone: run it only where scores are wanted.
    return this.ln_f.forward(scoredPositions(x, [B, T], opts));
  }

  /**
   * Token vectors, plus position vectors when they are learned. positions has
   * T entries (the same "where am I" signal broadcast over the rows) or B·T.
   */
  embed(ids: TokenIds, [B, T]: [number, number], positions: Int32Array): Tensor {
    const tokens = this.wte.forward(ids, [B, T]);
    if (!this.wpe) return tokens;
    return add(tokens, this.wpe.forward(positions, positions.length === T ? [1, T] : [B, T]));
  }
}
