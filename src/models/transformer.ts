import { DecoderLayer } from '../nn/decoder_layer.js';
import { Dropout } from '../nn/dropout.js';
import { Embedding } from '../nn/embedding.js';
import { EncoderLayer } from '../nn/encoder_layer.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { PositionalEncoding } from '../nn/positional.js';
import { crossEntropy } from '../tensor/ops/cross_entropy.js';
import { scale } from '../tensor/ops/elementwise.js';
import { labelSmoothedCrossEntropy } from '../tensor/ops/label_smoothing.js';
import { linear } from '../tensor/ops/linear.js';
import { embedding } from '../tensor/ops/embedding.js';
import { reshape, slice } from '../tensor/ops/shape.js';

import { attention, type AttentionOptions } from '../tensor/ops/attention.js';
import { AttentionProbe } from '../nn/attention_probe.js';
import { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import type { LayerAttend } from './causal_lm.js';
import type { TransformerConfig } from './transformer_config.js';

/** B rows of T token ids (row-major), padded at the end with the config's pad_id. */
export interface Tokens {
  ids: Int32Array;
  shape: [number, number];
}

/** What the encoder hands to every decoder layer: its output and which source positions are padding. */
export interface Encoded {
  memory: Tensor;
  /** B·Ts flags, 1 = padding; undefined when no row is padded. */
  padding: Uint8Array | undefined;
}

export interface Seq2SeqOutput {
  /** [B, Tt, vocab] scores for the next target token at every position. */
  logits: Tensor;
  loss: Tensor | null;
}

/**
 * The encoder–decoder Transformer of "Attention Is All You Need": the encoder
 * reads the whole source at once; the decoder writes the target one token at a
 * time, each layer attending to its own past (causal self-attention) and to
 * the encoder's output (cross-attention).
 */
export class Transformer extends Module {
  src_embed: Embedding;
  /** null when the source embedding is shared with the target. */
  tgt_embed: Embedding | null;
  src_pos: PositionalEncoding;
  tgt_pos: PositionalEncoding;
  drop: Dropout;
  encoder: EncoderLayer[];
  decoder: DecoderLayer[];
  /** Pre-norm leaves the residual stream unnormalised, so each stack ends with a LayerNorm. */
  enc_norm: LayerNorm | null;
  dec_norm: LayerNorm | null;
  /** null when the output projection is tied to the target embedding. */
  out_proj: Linear | null;
  readonly config: TransformerConfig;
  readonly rng: Rng;
  /** The last decoder layer's cross-attention, kept by the last decode with keepWeights. */
  private readonly crossProbe = new AttentionProbe();

  constructor(config: TransformerConfig, rng: Rng = new Rng(1337)) {
    super();
    this.config = config;
    this.rng = rng;
    const c = config;
    // std d^-½: after the √d scaling the token vectors have unit size, like the sinusoids added to them.
    const embed = (): Embedding => new Embedding(c.vocab_size, c.d_model, { std: 1 / Math.sqrt(c.d_model), rng });
    this.src_embed = embed();
    this.tgt_embed = c.share_embeddings ? null : embed();
    this.src_pos = new PositionalEncoding(c.positions, c.max_length, c.d_model, rng);
    this.tgt_pos = new PositionalEncoding(c.positions, c.max_length, c.d_model, rng);
    this.drop = new Dropout(c.dropout, rng);
    const layer = { d_model: c.d_model, n_head: c.n_head, d_ff: c.d_ff, dropout: c.dropout, norm: c.norm, activation: c.activation, bias: c.bias, rope: c.positions === 'rope' };
    this.encoder = Array.from({ length: c.n_encoder_layers }, () => new EncoderLayer(layer, rng));
    this.decoder = Array.from({ length: c.n_decoder_layers }, () => new DecoderLayer(layer, rng));
    const ln = (): LayerNorm | null => (c.norm === 'pre' ? new LayerNorm(c.d_model, { bias: c.bias }) : null);
    this.enc_norm = ln();
    this.dec_norm = ln();
    this.out_proj = c.tie_output ? null : new Linear(c.d_model, c.vocab_size, { bias: false, std: 1 / Math.sqrt(c.d_model), rng });
  }

  /** Teacher forcing: the decoder reads the true target shifted right (tgtIn) and predicts `targets`. */
  forward(src: Tokens, tgtIn: Tokens, targets?: Int32Array, opts: { labelSmoothing?: number } = {}): Seq2SeqOutput {
    const logits = this.decode(this.encode(src), tgtIn);
    if (!targets) return { logits, loss: null };
    const ls = opts.labelSmoothing ?? 0;
    const ignoreIndex = this.config.pad_id;
    const loss = ls > 0 ? labelSmoothedCrossEntropy(logits, targets, { smoothing: ls, ignoreIndex }) : crossEntropy(logits, targets, { ignoreIndex });
    return { logits, loss };
  }

  /** Run the encoder once; its output serves every decoder layer and every decoding step. */
  encode(src: Tokens, attend?: LayerAttend): Encoded {
    const { stream, padding } = this.encoderStream(src, attend);
    const x = stream.at(-1)!;
    return { memory: this.enc_norm ? this.enc_norm.forward(x) : x, padding };
  }

  /**
   * The encoder's residual stream: the embedded source, then the vectors
   * after each layer (before the final norm). `encode` keeps the last;
   * eval/inspect/ reads them all. attend, if given, replaces layer l's
   * self-attention op.
   */
  encoderStream(src: Tokens, attend?: LayerAttend): { stream: Tensor[]; padding: Uint8Array | undefined } {
    const padding = this.paddingMask(src);
    let x = this.embed(this.src_embed, this.src_pos, src);
    const stream = [x];
    this.encoder.forEach((layer, l) => {
      x = layer.forward(x, padding, attend && ((q, k, v, o) => attend(l, q, k, v, o)));
      stream.push(x);
    });
    return { stream, padding };
  }

  /** Scores [B, Tt, vocab] for the token after each target position. keepWeights keeps cross-attention weights. */
  decode(enc: Encoded, tgt: Tokens, opts: { keepWeights?: boolean } = {}): Tensor {
    // To keep the weights, the last layer's cross-attention runs through a probe that keeps its queries and keys.
    const last = this.decoder.length - 1;
    const cross = opts.keepWeights ? (l: number, q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor =>
      (l === last ? this.crossProbe.attend : attention)(q, k, v, o) : undefined;
    return this.readOut(this.decoderStream(enc, tgt, { cross }).at(-1)!);
  }

  /**
   * The decoder's residual stream: the embedded target, then the vectors
   * after each layer (before the final norm). self / cross, if given,
   * replace layer l's self- or cross-attention op (eval/inspect/ reads and
   * removes heads through them).
   */
  decoderStream(enc: Encoded, tgt: Tokens, attends: { self?: LayerAttend; cross?: LayerAttend } = {}): Tensor[] {
    const tgtPadding = this.paddingMask(tgt);
    let x = this.embed(this.tgt_embed ?? this.src_embed, this.tgt_pos, tgt);
    const stream = [x];
    const { self, cross } = attends;
    this.decoder.forEach((layer, l) => {
      x = layer.forward(x, enc.memory, {
        tgtPadding,
        srcPadding: enc.padding,
        selfAttend: self && ((q, k, v, o) => self(l, q, k, v, o)),
        crossAttend: cross && ((q, k, v, o) => cross(l, q, k, v, o)),
      });
      stream.push(x);
    });
    return stream;
  }

  /** Scores for the next token from a decoder vector: the final norm (pre-norm models), then the output projection. */
  readOut(x: Tensor): Tensor {
    if (this.dec_norm) x = this.dec_norm.forward(x);
    return this.out_proj ? this.out_proj.forward(x) : linear(x, (this.tgt_embed ?? this.src_embed).weight);
  }

  /**
   * Inference: scores [B, vocab] for the token after the last of each row's
   * prefix (all rows the same length). The prefix is re-read from the start
   * each step — no key/value cache: translations here are a few dozen tokens.
   */
  decodeStep(enc: Encoded, prefix: Tokens): Tensor {
    const [B, T] = prefix.shape;
    const logits = this.decode(enc, prefix);
    return reshape(T === 1 ? logits : slice(logits, 1, T - 1, T), [B, this.config.vocab_size]);
  }

  /** The last decoder layer's cross-attention queries and keys from the last decode with keepWeights: what a device reads back for crossAttention. */
  crossQueriesKeys(): [Tensor, Tensor] | null {
    return this.crossProbe.queriesKeys();
  }

  /** The last decoder layer's cross-attention [B, heads, Tt, Ts] from the last decode with keepWeights (on a device: given q's and k's values); once per decode, then null. */
  crossAttention(values?: readonly [Float32Array, Float32Array]): Float32Array | null {
    return this.crossProbe.weights(values);
  }

  /** Token vectors scaled by √d_model (the paper, §3.4), plus positions, then dropout. */
  private embed(table: Embedding, pos: PositionalEncoding, t: Tokens): Tensor {
    return this.drop.forward(pos.forward(scale(table.forward(t.ids, t.shape), Math.sqrt(this.config.d_model))));
  }

  private paddingMask(t: Tokens): Uint8Array | undefined {
    const pad = this.config.pad_id;
    if (!t.ids.includes(pad)) return undefined;
    return Uint8Array.from(t.ids, (id) => (id === pad ? 1 : 0));
  }
}

/**
 * The encoder output for a selection of rows (beam hypotheses share their
 * source's memory): a lookup of whole rows, so it stays on the backend that
 * holds the memory.
 */
export function encodedRows(enc: Encoded, rows: ArrayLike<number>): Encoded {
  const [B, Ts, C] = enc.memory.shape as [number, number, number];
  const ids = Int32Array.from(rows);
  const memory = reshape(embedding(reshape(enc.memory, [B, Ts * C]), ids, [ids.length]), [ids.length, Ts, C]);
  const padding = enc.padding ? new Uint8Array(ids.length * Ts) : undefined;
  ids.forEach((r, i) => padding?.set(enc.padding!.subarray(r * Ts, (r + 1) * Ts), i * Ts));
  return { memory, padding };
}
