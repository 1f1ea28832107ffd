import type { Hit } from './store.js';

/**
 * The second stage of Matryoshka search: the first stage found candidates
 * with a short prefix of each vector (cheap, a little blurred); here each
 * candidate is scored again with the whole vector and the best k kept. When
 * the prefix keeps the true neighbours among the candidates, the result
 * equals a full-dimension search at a fraction of its cost.
 */
export function rerankFullVector(query: Float32Array, candidates: readonly Hit[], k: number): Hit[] {
  const scored = candidates.map((h) => {
    if (!h.vector || h.vector.length !== query.length) throw new Error(`candidate ${h.chunk.id} has no ${query.length}-dimensional vector to rerank with`);
    return { ...h, score: dot(query, h.vector) };
  });
  return scored.sort((a, b) => b.score - a.score).slice(0, k);
}

/** Cosine similarity of unit vectors. */
export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}
