import type { TranslationPair } from '../data/translation_pairs.js';
import type { Tokens } from './transformer.js';
import { BOS, EOS, PAD, type PieceTokenizer } from '../tokenizers/piece.js';
import { UserError } from '../util/errors.js';

/** One padded batch for teacher forcing. */
export interface Seq2SeqBatch {
  /** Source tokens then EOS, padded with PAD. */
  src: Tokens;
  /** BOS then the target: what the decoder reads. */
  tgtIn: Tokens;
  /** The target then EOS: what it must predict at each position (PAD = ignored). */
  targets: Int32Array;
  /** Real (non-padding) tokens in src and targets, for tokens/s. */
  tokens: number;
}

/** Rows of ids padded at the end to the longest row. */
export function padRows(rows: Int32Array[], pad = PAD): Tokens {
  const T = Math.max(1, ...rows.map((r) => r.length));
  const ids = new Int32Array(rows.length * T).fill(pad);
  rows.forEach((r, i) => ids.set(r, i * T));
  return { ids, shape: [rows.length, T] };
}

/** Source text → ids + EOS, checked against the model's longest sequence. */
export function encodeSource(tokenizer: PieceTokenizer, text: string, maxLength: number): Int32Array {
  const ids = tokenizer.encode(text);
  if (ids.length + 1 > maxLength) throw new UserError(`${JSON.stringify(text)} is ${ids.length} tokens; this model reads at most ${maxLength - 1}`);
  const out = new Int32Array(ids.length + 1);
  out.set(ids);
  out[ids.length] = EOS;
  return out;
}

/** Tokenize and pad pairs: sources with EOS; targets shifted by BOS in and EOS out. */
export function makeBatch(tokenizer: PieceTokenizer, pairs: TranslationPair[], maxLength: number): Seq2SeqBatch {
  const src = pairs.map((p) => encodeSource(tokenizer, p.source, maxLength));
  const tgt = pairs.map((p) => {
    const ids = tokenizer.encode(p.target);
    if (ids.length + 1 > maxLength) throw new UserError(`target ${JSON.stringify(p.target)} is ${ids.length} tokens; this model writes at most ${maxLength - 1}`);
    return ids;
  });
  const tgtIn = padRows(tgt.map((t) => Int32Array.of(BOS, ...t)));
  const out = padRows(tgt.map((t) => Int32Array.of(...t, EOS)));
  const tokens = src.reduce((n, r) => n + r.length, 0) + tgt.reduce((n, r) => n + r.length + 1, 0);
  return { src: padRows(src), tgtIn, targets: out.ids, tokens };
}
