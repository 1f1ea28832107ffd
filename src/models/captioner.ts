import { DecoderLayer } from '../nn/decoder_layer.js';
import { Embedding } from '../nn/embedding.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Module } from '../nn/module.js';
import { PositionalEncoding } from '../nn/positional.js';
import { attention, type AttentionOptions } from '../tensor/ops/attention.js';
import { AttentionProbe } from '../nn/attention_probe.js';
import { crossEntropy } from '../tensor/ops/cross_entropy.js';
import { add, scale } from '../tensor/ops/elementwise.js';
import { linear } from '../tensor/ops/linear.js';
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import type { LayerAttend } from './causal_lm.js';
import type { CaptionerConfig } from './captioner_config.js';
import { ViT } from './vit.js';

export interface CaptionerOutput {
  /** [B, T, vocab] scores for the next caption word at every position. */
  logits: Tensor;
  /** Caption cross-entropy, plus classLossWeight × the ViT head's class cross-entropy when labels were given. */
  loss: Tensor | null;
}

/**
 * A multi-modal transformer: the ViT reads the picture into one vector per
 * patch (plus its class token); a text decoder writes the caption word by
 * word, each layer attending to the words so far (causal self-attention) and
 * to the image's patch vectors (cross-attention) — the encoder–decoder
 * Transformer with a picture where the source sentence was. The output
 * projection is the word embedding, transposed (tied).
 */
export class Captioner extends Module {
  encoder: ViT;
  embed: Embedding;
  pos: PositionalEncoding;
  decoder: DecoderLayer[];
  norm: LayerNorm;
  readonly config: CaptionerConfig;
  /** The last decoder layer's cross-attention, kept by the last decode with keepWeights. */
  private readonly crossProbe = new AttentionProbe();

  constructor(config: CaptionerConfig, rng: Rng = new Rng(1337)) {
    super();
    this.config = config;
    const { d_model: D, n_head, d_ff, dropout } = config.image;
    this.encoder = new ViT(config.image, rng);
    this.embed = new Embedding(config.vocab.length, D, { std: 1 / Math.sqrt(D), rng });
    this.pos = new PositionalEncoding('learned', config.max_length, D, rng);
    this.decoder = Array.from({ length: config.n_decoder_layers }, () =>
      new DecoderLayer({ d_model: D, n_head, d_ff, dropout, norm: 'pre', activation: 'gelu' }, rng));
    this.norm = new LayerNorm(D, { bias: true });
  }

  /**
   * Teacher forcing: images [B, H, W, C], the captions shifted right
   * (tokensIn [B·T], starting with <bos>) and the words to predict (targets,
   * <pad> ignored). With labels, the ViT's own class head is trained
   * alongside, weighted by classLossWeight, so the patch vectors carry the
   * class from the start.
   */
  forward(images: Tensor, tokensIn: Int32Array, targets?: Int32Array, opts: { labels?: Int32Array; classLossWeight?: number } = {}): CaptionerOutput {
    const memory = this.encoder.encode(images);
    const logits = this.decode(memory, tokensIn);
    if (!targets) return { logits, loss: null };
    let loss = crossEntropy(logits, targets, { ignoreIndex: 0 });
    const w = opts.classLossWeight ?? 0;
    if (opts.labels && w > 0) {
      loss = add(loss, scale(crossEntropy(this.encoder.classScores(memory), opts.labels), w));
    }
    return { logits, loss };
  }

  /** The image as the decoder's memory: [B, 1 + patches, D]. */
  encode(images: Tensor): Tensor {
    return this.encoder.encode(images);
  }

  /** Scores [B, T, vocab] for the word after each position of tokens [B·T]; keepWeights keeps the last layer's cross-attention. */
  decode(memory: Tensor, tokens: Int32Array, opts: { keepWeights?: boolean } = {}): Tensor {
    const last = this.decoder.length - 1;
    const cross = opts.keepWeights ? (l: number, q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor =>
      (l === last ? this.crossProbe.attend : attention)(q, k, v, o) : undefined;
    return this.readOut(this.decoderStream(memory, tokens, { cross }).at(-1)!);
  }

  /**
   * The decoder's residual stream: the embedded words, then the vectors after
   * each layer (before the final norm). self / cross, if given, replace layer
   * l's self- or cross-attention op (eval/inspect/ reads and removes heads through them).
   */
  decoderStream(memory: Tensor, tokens: Int32Array, attends: { self?: LayerAttend; cross?: LayerAttend } = {}): Tensor[] {
    const B = memory.shape[0]!;
    const T = tokens.length / B;
    let x = this.pos.forward(scale(this.embed.forward(tokens, [B, T]), Math.sqrt(this.config.image.d_model)));
    const stream = [x];
    const { self, cross } = attends;
    this.decoder.forEach((layer, l) => {
      x = layer.forward(x, memory, {
        selfAttend: self && ((q, k, v, o) => self(l, q, k, v, o)),
        crossAttend: cross && ((q, k, v, o) => cross(l, q, k, v, o)),
      });
      stream.push(x);
    });
    return stream;
  }

  /** Scores for the next word from a decoder vector: the final norm, then the word embedding transposed (tied). */
  readOut(x: Tensor): Tensor {
    return linear(this.norm.forward(x), this.embed.weight);
  }

  /** The last decoder layer's cross-attention queries and keys from the last decode with keepWeights: what a device reads back for crossAttention. */
  crossQueriesKeys(): [Tensor, Tensor] | null {
    return this.crossProbe.queriesKeys();
  }

  /** The last decoder layer's cross-attention [B, heads, T, 1 + patches] from the last decode with keepWeights (on a device: given q's and k's values); once per decode, then null. */
  crossAttention(values?: readonly [Float32Array, Float32Array]): Float32Array | null {
    return this.crossProbe.weights(values);
  }
}
