import type { Transformer } from '../models/transformer.js';
import { noGrad } from '../tensor/autograd.js';
import { withDeviceScratch } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';
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
  return valuesNow(mapReads(model, tokenizer, source, targetIds));
}

/** crossAttentionMap on any backend: a device reads back the last layer's cross-attention queries and keys. */
export function crossAttentionMapAsync(model: Transformer, tokenizer: PieceTokenizer, source: string, targetIds: number[]): Promise<CrossAttentionMap> {
  return valuesAwaited(mapReads(model, tokenizer, source, targetIds));
}

/** The teacher-forced pass (scratch on a device), yielding the queries and keys to be read; the weights computed from their values. */
function* mapReads(model: Transformer, tokenizer: PieceTokenizer, source: string, targetIds: number[]): ValueReads<CrossAttentionMap> {
  const src = encodeSource(tokenizer, source, model.config.max_length);
  const tgtIn = Int32Array.of(BOS, ...targetIds);
  const [q, k] = withDeviceScratch(() => noGrad(() => {
    model.decode(model.encode(padRows([src])), padRows([tgtIn]), { keepWeights: true });
    return model.crossQueriesKeys()!;
  }), (qk) => qk.map((t) => t.storage));
  const [qValues, kValues] = yield [q, k];
  const w = model.crossAttention([qValues!, kValues!])!;
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
