import { performance } from 'node:perf_hooks';
import { UserError } from '../util/errors.js';
import { reciprocalRankFusion, RRF_K } from './fusion.js';
import { unitPrefix } from './lancedb_store.js';
import type { Chunk, Hit, RetrievalStore } from './store.js';
import type { TextEmbedder } from './text_embedder.js';
import { rerankFullVector } from './two_stage.js';
import { VectorMatrix } from './vector_matrix.js';

/**
 * Stores whose vectors fit in this many bytes are searched in memory (the
 * prefix and full matrices: 100 000 chunks of 128 + 32 numbers are 64 MB);
 * larger ones by the database's own vector search (its ANN index when built).
 */
export const IN_MEMORY_BYTES = 512 * 1024 * 1024;

export const SEARCH_MODES = ['bm25', 'dense', 'hybrid'] as const;
export type SearchMode = (typeof SEARCH_MODES)[number];

/**
 * How the dense list is found: `two-stage` (Matryoshka prefix candidates,
 * full-vector rerank; the default) or `exact` (every chunk scored by its full
 * vector: the baseline two-stage is measured against).
 */
export const DENSE_SEARCHES = ['two-stage', 'exact'] as const;
export type DenseSearch = (typeof DENSE_SEARCHES)[number];

/** A dense or keyword hit: with its chunk, or (from the in-memory matrix) its chunk id and store row until the chunk is read. */
type DenseHit = { chunk: Chunk; score: number; id?: undefined; row?: undefined } | { chunk?: undefined; id: string; row: bigint; score: number };

export interface SearchOptions {
  mode?: SearchMode;
  k?: number;
  /** Candidates each first-stage list contributes (default max(50, 5k)): the prefix search's and the fused lists' depth. */
  depth?: number;
  /** RRF's k (default 60). */
  rrfK?: number;
  /** Hybrid: the weight of the dense list in the fusion, BM25's being 1 (default 1: plain RRF). */
  denseWeight?: number;
  /** The dense list's search (default two-stage). */
  dense?: DenseSearch;
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
      const q = await this.embedder.embedQueryAsync(query);
      timing.embedMs = performance.now() - te;
      if (mode === 'dense') {
        hits = await timed('denseMs', () => this.dense(q, k, depth, o.dense));
      } else {
        // The dense list is fused by chunk id before any text is fetched: only the fused top k that
        // BM25 did not also return need their chunks read from the store (one read).
        const [bm25, dense] = await Promise.all([timed('bm25Ms', () => this.store.keywordSearch(query, depth)), timed('denseMs', () => this.denseRanked(q, depth, depth, o.dense))]);
        const fused = reciprocalRankFusion<DenseHit>([bm25, dense], (h) => h.id ?? h.chunk!.id, o.rrfK ?? RRF_K, [1, o.denseWeight ?? 1]).slice(0, k);
        const chunks = await this.resolve(fused.map((f) => f.item));
        hits = fused.map((f, i) => ({ chunk: chunks[i]!, score: f.score }));
      }
    }
    timing.totalMs = performance.now() - t0;
    return { results: hits.map((h, i) => ({ chunk: h.chunk, score: h.score, rank: i + 1 })), timing };
  }

  /** Matryoshka two-stage: `depth` candidates by the prefix, the best k of them by the full vector (or, `exact`, the best k of all by the full vector). */
  async dense(q: Float32Array, k: number, depth: number, search: DenseSearch = 'two-stage'): Promise<Hit[]> {
    const ranked = await this.denseRanked(q, k, depth, search);
    const chunks = await this.resolve(ranked);
    return ranked.map((h, i) => ({ chunk: chunks[i]!, score: h.score }));
  }

  /** The chunks of dense hits: those the search returned, the others read from the store by row in one read. */
  private async resolve(hits: readonly DenseHit[]): Promise<Chunk[]> {
    const missing = hits.filter((h) => !h.chunk);
    const read = await this.store.chunksAt(missing.map((h) => h.row!));
    const byRow = new Map(missing.map((h, i) => [h.row!, read[i]!]));
    return hits.map((h) => h.chunk ?? byRow.get(h.row!)!);
  }

  /** The two-stage ranking; hits from the in-memory matrix carry a chunk id and row, not yet the chunk. */
  private async denseRanked(q: Float32Array, k: number, depth: number, search: DenseSearch = 'two-stage'): Promise<DenseHit[]> {
    const { prefixDim, dim } = this.store.info;
    const exact = search === 'exact' || prefixDim >= dim;
    const matrix = await this.matrix();
    if (matrix) {
      const candidates = exact ? matrix.topByFull(q, k) : matrix.twoStage(q, unitPrefix(q, prefixDim), Math.max(depth, k), k);
      return candidates.map((c) => ({ id: matrix.ids[c.row]!, row: matrix.rowIds[c.row]!, score: c.score }));
    }
    if (exact) return this.store.fullSearch(q, k);
    const candidates = await this.store.prefixSearch(unitPrefix(q, prefixDim), Math.max(depth, k));
    return rerankFullVector(q, candidates, k);
  }

  private loaded?: { version: number; matrix: VectorMatrix | null };

  /**
   * The store's vectors in memory (vector_matrix.ts), loaded at the first
   * dense search and again whenever the store's version has moved on; null
   * when they would not fit in IN_MEMORY_BYTES.
   */
  async matrix(): Promise<VectorMatrix | null> {
    const version = await this.store.version();
    if (this.loaded?.version !== version) {
      const { prefixDim, dim } = this.store.info;
      const fits = VectorMatrix.bytesFor(await this.store.count(), prefixDim, dim) <= IN_MEMORY_BYTES;
      this.loaded = { version, matrix: fits ? await this.store.loadVectors() : null };
    }
    return this.loaded.matrix;
  }
}
