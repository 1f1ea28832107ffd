import type { Transformer } from '../models/transformer.js';
import { noGrad } from '../tensor/autograd.js';
import { BOS, EOS, type PieceTokenizer } from '../tokenizers/piece.js';
import { encodeSource, padRows } from '../models/seq2seq_batch.js';

/** Which source tokens each output token looked at: weights[head][row][col], rows sum to 1. */
export interface CrossAttentionMap {
  /** The source tokens (columns), EOS included. */
  sourceTokens: string[];
  /** The output tokens (rows), EOS included: row i is the step that wrote token i. */
  targetTokens: string[];
  /** Per head, [rows][cols]. */
  heads: number[][][];
}

/**
 * The last decoder layer's cross-attention while writing `targetIds` for
 * `source`: the decoder re-reads BOS + targetIds in one teacher-forced pass,
 * which gives the same weights as the step-by-step decoding did (causal
 * attention: no position sees anything after it).
 */
export function crossAttentionMap(model: Transformer, tokenizer: PieceTokenizer, source: string, targetIds: number[]): CrossAttentionMap {
  const src = encodeSource(tokenizer, source, model.config.max_length);
  const tgtIn = Int32Array.of(BOS, ...targetIds);
  const w = noGrad(() => {
    model.decode(model.encode(padRows([src])), padRows([tgtIn]), { keepWeights: true });
    return model.crossAttention()!;
  });
  const Tq = tgtIn.length;
  const Tk = src.length;
  const heads = Array.from({ length: model.config.n_head }, (_, h) =>
    Array.from({ length: Tq }, (_, i) => Array.from(w.subarray((h * Tq + i) * Tk, (h * Tq + i + 1) * Tk))),
  );
  const label = (id: number): string => tokenizer.piece(id);
  return { sourceTokens: Array.from(src, label), targetTokens: [...targetIds, EOS].map(label), heads };
}

/** The heads averaged: one matrix [rows][cols]. */
export function meanOverHeads(map: CrossAttentionMap): number[][] {
  const H = map.heads.length;
  return map.heads[0]!.map((row, i) => row.map((_, j) => map.heads.reduce((s, head) => s + head[i]![j]!, 0) / H));
}
