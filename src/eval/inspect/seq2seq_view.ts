import type { TranslationPair } from '../../data/translation_pairs.js';
import { makeBatch } from '../../models/seq2seq_batch.js';
import type { Transformer } from '../../models/transformer.js';
import type { PieceTokenizer } from '../../tokenizers/piece.js';
import type { EncDecBatch, EncoderDecoderView } from './encoder_decoder_view.js';

const VOWEL = /^\s*[aeiouäöüAEIOUÄÖÜ]/;

/**
 * A translation model (`attn seq2seq`) on sentence pairs, as the view
 * inspect_encoder_decoder.ts reads. Both probes ask whether the *next*
 * token starts with a vowel: on the decoder side that is the token it must
 * predict (does the stream know what is coming?); on the encoder side the
 * following source token, which an encoder (seeing the whole sentence) may
 * have copied into each position.
 */
export function seq2seqView(model: Transformer, tokenizer: PieceTokenizer, pairs: TranslationPair[]): EncoderDecoderView {
  const c = model.config;
  const pad = c.pad_id;
  const vowel = (id: number): number => (id !== pad && VOWEL.test(tokenizer.piece(id, '')) ? 1 : 0);
  const nextVowel = (ids: Int32Array, T: number): Float64Array => Float64Array.from(ids, (_, r) => (r % T < T - 1 ? vowel(ids[r + 1]!) : 0));
  model.eval();
  return {
    kind: 'seq2seq',
    encoderLayers: c.n_encoder_layers,
    decoderLayers: c.n_decoder_layers,
    heads: c.n_head,
    headDim: c.d_model / c.n_head,
    count: pairs.length,
    batch(indices): EncDecBatch {
      const b = makeBatch(tokenizer, Array.from(indices, (i) => pairs[i]!), c.max_length);
      const [B, Ts] = b.src.shape;
      const Tt = b.tgtIn.shape[1];
      return {
        B, Ts, Tt,
        streams(attends = {}) {
          const { stream: encoder, padding } = model.encoderStream(b.src, attends.encoder);
          const x = encoder.at(-1)!;
          const enc = { memory: model.enc_norm ? model.enc_norm.forward(x) : x, padding };
          return { encoder, decoder: model.decoderStream(enc, b.tgtIn, { self: attends.self, cross: attends.cross }) };
        },
        readOut: (h) => model.readOut(h),
        targets: b.targets,
        ignoreIndex: pad,
        srcKeep: Uint8Array.from(b.src.ids, (id) => (id === pad ? 0 : 1)),
        tgtKeep: Uint8Array.from(b.targets, (id) => (id === pad ? 0 : 1)),
        encoderProbe: { name: 'next source token starts with a vowel', binary: true, values: nextVowel(b.src.ids, Ts) },
        decoderProbe: { name: 'next target token starts with a vowel', binary: true, values: Float64Array.from(b.targets, vowel) },
        srcLabels: Array.from(b.src.ids.subarray(0, Ts), (id) => tokenizer.piece(id)),
        tgtLabels: Array.from(b.tgtIn.ids.subarray(0, Tt), (id) => tokenizer.piece(id)),
      };
    },
  };
}
