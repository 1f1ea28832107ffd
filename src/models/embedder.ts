import { Embedding } from '../nn/embedding.js';
import { EncoderLayer } from '../nn/encoder_layer.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Module } from '../nn/module.js';
import { PositionalEncoding } from '../nn/positional.js';
import { meanPool } from '../tensor/ops/mean_pool.js';
import type { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import type { EmbedderConfig } from './embedder_config.js';
import type { LayerAttend } from './causal_lm.js';

/**
 * A sentence embedder: token embedding + positions, N bidirectional encoder
 * layers (pre-norm, padding masked), a final LayerNorm, and the mean of the
 * real positions' vectors as the sentence's embedding. Trained so that any
 * prefix of that vector (config.matryoshka_dims) is an embedding too.
 */
export class Embedder extends Module {
  tok: Embedding;
  pos: PositionalEncoding;
  layers: EncoderLayer[];
  ln_f: LayerNorm;
  readonly config: EmbedderConfig;

  constructor(config: EmbedderConfig, rng: Rng = new Rng(1337)) {
    super();
    this.config = config;
    const c = config;
    this.tok = new Embedding(c.vocab_size, c.d_model, { std: 0.02, rng });
    this.pos = new PositionalEncoding(c.positions, c.max_len, c.d_model, rng);
    const layer = { d_model: c.d_model, n_head: c.n_head, d_ff: c.d_ff, dropout: c.dropout, norm: 'pre' as const, activation: c.activation, rope: c.positions === 'rope' };
    this.layers = Array.from({ length: c.n_layer }, () => new EncoderLayer(layer, rng));
    this.ln_f = new LayerNorm(c.d_model, { bias: true });
  }

  /**
   * ids: B·T token ids (row-major); padding: B·T flags, 1 = padding (neither
   * attended to nor pooled). Returns [B, d_model] un-normalised embeddings.
   */
  forward(ids: Int32Array, [B, T]: [number, number], padding?: Uint8Array, attend?: LayerAttend): Tensor {
    return meanPool(this.ln_f.forward(this.stream(ids, [B, T], padding, attend).at(-1)!), padding, this.tokenWeights(ids));
  }

  /**
   * Each position's pooling weight, by its token (config.token_weights), or
   * undefined for the plain mean. Weighted by inverse document frequency,
   * a sentence's vector is mostly its rare words — the names a question and
   * its passage share — not the spaces and "the"s every text has.
   */
  tokenWeights(ids: Int32Array): Float32Array | undefined {
    const table = this.config.token_weights;
    if (!table) return undefined;
    return Float32Array.from(ids, (id) => table[id] ?? 0);
  }

  /**
   * The residual stream: the embedded tokens (with positions) first, then the
   * vectors after each layer, before the final norm and the pooling. `forward`
   * pools the last; eval/inspect/ reads them all. `attend`, if given, replaces
   * layer l's attention op (eval/inspect/ reads and removes heads through it).
   */
  stream(ids: Int32Array, [B, T]: [number, number], padding?: Uint8Array, attend?: LayerAttend): Tensor[] {
    if (ids.length !== B * T) throw new Error(`expected ${B}×${T} ids, got ${ids.length}`);
    let x = this.pos.forward(this.tok.forward(ids, [B, T]));
    const out = [x];
    this.layers.forEach((layer, l) => {
      x = layer.forward(x, padding, attend && ((q, k, v, o) => attend(l, q, k, v, o)));
      out.push(x);
    });
    return out;
  }
}
