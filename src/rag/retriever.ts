import { performance } from 'node:perf_hooks';
import { UserError } from '../util/errors.js';
import { reciprocalRankFusion, RRF_K } from './fusion.js';
import { unitPrefix } from './lancedb_store.js';
import type { Chunk, Hit, RetrievalStore } from './store.js';
import type { TextEmbedder } from './text_embedder.js';
import { rerankFullVector } from './two_stage.js';

export const SEARCH_MODES = ['bm25', 'dense', 'hybrid'] as const;
export type SearchMode = (typeof SEARCH_MODES)[number];

export interface SearchOptions {
  mode?: SearchMode;
  k?: number;
  /** Candidates each first-stage list contributes (default max(50, 5k)): the prefix search's and the fused lists' depth. */
  depth?: number;
  /** RRF's k (default 60). */
  rrfK?: number;
}

export interface Retrieved {
  chunk: Chunk;
  /** BM25 score, cosine, or RRF score, by mode; higher is better. */
  score: number;
  rank: number;
}

export interface SearchTiming {
  /** Milliseconds spent embedding the query, in each list, and in total. */
  embedMs: number;
  bm25Ms: number;
  denseMs: number;
  totalMs: number;
}

/**
 * The three searches. BM25 and the prefix search are the database's; the
 * full-vector rerank (two_stage.ts) and the fusion (fusion.ts) are attn's.
 */
export class Retriever {
  constructor(
    readonly store: RetrievalStore,
    readonly embedder: TextEmbedder,
  ) {
    embedder.checkStore(store.info, 'store');
  }

  async search(query: string, o: SearchOptions = {}): Promise<{ results: Retrieved[]; timing: SearchTiming }> {
    const mode = o.mode ?? 'hybrid';
    const k = o.k ?? 10;
    if (!Number.isInteger(k) || k < 1) throw new UserError(`k must be a positive integer (got ${k})`);
    if (query.trim() === '') throw new UserError('the query is empty: give the question to search for');
    const depth = o.depth ?? Math.max(50, 5 * k);
    const t0 = performance.now();
    const timing: SearchTiming = { embedMs: 0, bm25Ms: 0, denseMs: 0, totalMs: 0 };
    const timed = async <T>(key: 'bm25Ms' | 'denseMs', f: () => Promise<T>): Promise<T> => {
      const t = performance.now();
      const r = await f();
      timing[key] = performance.now() - t;
      return r;
    };
    let hits: Array<{ chunk: Chunk; score: number }>;
    if (mode === 'bm25') {
      hits = await timed('bm25Ms', () => this.store.keywordSearch(query, k));
    } else {
      const te = performance.now();
      const q = this.embedder.embedQuery(query);
      timing.embedMs = performance.now() - te;
      if (mode === 'dense') {
        hits = await timed('denseMs', () => this.dense(q, k, depth));
      } else {
        const [bm25, dense] = await Promise.all([timed('bm25Ms', () => this.store.keywordSearch(query, depth)), timed('denseMs', () => this.dense(q, depth, depth))]);
        hits = reciprocalRankFusion<Hit>([bm25, dense], (h) => h.chunk.id, o.rrfK ?? RRF_K)
          .slice(0, k)
          .map((f) => ({ chunk: f.item.chunk, score: f.score }));
      }
    }
    timing.totalMs = performance.now() - t0;
    return { results: hits.map((h, i) => ({ chunk: h.chunk, score: h.score, rank: i + 1 })), timing };
  }

  /** Matryoshka two-stage: `depth` candidates by the prefix, the best k of them by the full vector. */
  async dense(q: Float32Array, k: number, depth: number): Promise<Hit[]> {
    const { prefixDim, dim } = this.store.info;
    if (prefixDim >= dim) return this.store.fullSearch(q, k);
    const candidates = await this.store.prefixSearch(unitPrefix(q, prefixDim), Math.max(depth, k));
    return rerankFullVector(q, candidates, k);
  }
}
