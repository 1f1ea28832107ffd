import { normalizedPrefix, pooledEmbeddings, pooledEmbeddingsAsync } from '../models/embed_texts.js';
import type { Embedder } from '../models/embedder.js';
import type { Pair } from '../data/positive_pairs.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';

/**
 * Retrieval recall@1: for each anchor, is its own positive the most similar
 * (cosine) of all the positives? Chance is 1/N. Vectors are [N·full]
 * row-major; only their first `dim` components are compared.
 */
export function recallAtOne(anchors: Float32Array, positives: Float32Array, n: number, full: number, dim: number): number {
  const P = Array.from({ length: n }, (_, j) => normalizedPrefix(positives, j, full, dim));
  let hits = 0;
  for (let i = 0; i < n; i++) {
    const a = normalizedPrefix(anchors, i, full, dim);
    let best = -1;
    let bestSim = -Infinity;
    for (let j = 0; j < n; j++) {
      const p = P[j]!;
      let s = 0;
      for (let k = 0; k < dim; k++) s += a[k]! * p[k]!;
      if (s > bestSim) {
        bestSim = s;
        best = j;
      }
    }
    if (best === i) hits++;
  }
  return hits / n;
}

/** recall@1 of `pairs` at each prefix dimension, keyed by dimension. The model runs once. */
export function evaluateRecall(model: Embedder, tokenizer: Tokenizer, pairs: readonly Pair[], dims: readonly number[]): Map<number, number> {
  const full = model.config.d_model;
  const a = pooledEmbeddings(model, tokenizer, pairs.map((p) => p.anchor));
  const p = pooledEmbeddings(model, tokenizer, pairs.map((p) => p.positive));
  return new Map(dims.map((d) => [d, recallAtOne(a, p, pairs.length, full, d)]));
}

/** evaluateRecall on any backend: on a device the passes run there and only the vectors are read back. */
export async function evaluateRecallAsync(model: Embedder, tokenizer: Tokenizer, pairs: readonly Pair[], dims: readonly number[]): Promise<Map<number, number>> {
  const full = model.config.d_model;
  const a = await pooledEmbeddingsAsync(model, tokenizer, pairs.map((p) => p.anchor));
  const p = await pooledEmbeddingsAsync(model, tokenizer, pairs.map((p) => p.positive));
  return new Map(dims.map((d) => [d, recallAtOne(a, p, pairs.length, full, d)]));
}

/** Prefix sizes worth reporting: the trained ones, and halvings of the full size down to 8. */
export function reportDims(full: number, trained: readonly number[]): number[] {
  const dims = new Set(trained);
  for (let d = full; d >= 8; d = Math.floor(d / 2)) dims.add(d);
  return [...dims].sort((x, y) => x - y);
}
