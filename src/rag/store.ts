import type { VectorMatrix } from './vector_matrix.js';

/**
 * The retrieval store: where chunks, their text and their vectors live, and
 * what answers the two first-stage searches (keywords and vectors). attn's
 * own code sits above this interface — chunking, embedding, the Matryoshka
 * rerank and Reciprocal Rank Fusion — so a server-based database can be added
 * later as one more implementation (docs/rag.md says which, and why).
 */

/** A passage of a document, as it is indexed. */
export interface Chunk {
  /** `${source}#${ordinal}`: stable while the file's chunking does not change. */
  id: string;
  /** The file it came from (the path as given to `attn rag index`). */
  source: string;
  /** Position of the chunk within its file, from 0. */
  ordinal: number;
  /** Character offsets [start, end) in the file's text (for HTML: the text after tags are stripped). */
  start: number;
  end: number;
  text: string;
  /** Tokens of the embedder's tokenizer in `text`. */
  tokens: number;
}

/** A chunk with its unit-length embedding (all d_model components) and its file's content hash. */
export interface StoredChunk extends Chunk {
  vector: Float32Array;
  fileHash: string;
}

/** One result of a first-stage search; `score` is higher-is-better within one list. */
export interface Hit {
  chunk: Chunk;
  score: number;
  /** The full vector, when the search returned it (dense search does: the rerank needs it). */
  vector?: Float32Array;
}

/** What every chunk's vector is: fixed when the store is created, checked against each embedder that uses it. */
export interface StoreInfo {
  /** Full embedding dimension (the embedder's d_model). */
  dim: number;
  /** Components kept in the prefix column that the first dense stage searches (a trained Matryoshka prefix). */
  prefixDim: number;
  /** The embedder directory the store was indexed with (queries must be embedded by the same model). */
  embedder: string;
  /**
   * That embedder's fingerprint when the store was made (TextEmbedder.fingerprint:
   * its config and weights), so that an embedder retrained in place is noticed.
   * Absent in stores made before it was recorded.
   */
  embedderFingerprint?: string;
}

export interface IndexedFile {
  source: string;
  fileHash: string;
  chunks: number;
}

export interface RetrievalStore {
  readonly info: StoreInfo;
  /** The content hash recorded for `source`, or undefined when it is not indexed. */
  fileHash(source: string): Promise<string | undefined>;
  /**
   * Make each file's `chunks` its whole content, all files in one commit:
   * readers see either all the old chunks or all the new ones, never a mix,
   * and a crash leaves the old ones. A file with an empty list is removed.
   */
  replaceFiles(files: ReadonlyArray<{ source: string; chunks: readonly StoredChunk[] }>): Promise<void>;
  files(): Promise<IndexedFile[]>;
  count(): Promise<number>;
  /** Keyword search (BM25), best first. */
  keywordSearch(query: string, k: number): Promise<Hit[]>;
  /** Nearest chunks to a unit vector of the prefix column (prefixDim components), best first, with full vectors. */
  prefixSearch(prefix: Float32Array, k: number): Promise<Hit[]>;
  /** Exact nearest chunks by the full vectors: the baseline the two-stage search is measured against. */
  fullSearch(vector: Float32Array, k: number): Promise<Hit[]>;
  /** The table's version: one more after each commit (a snapshot such as the in-memory matrix is of one version). */
  version(): Promise<number>;
  /** Every chunk's id, row handle, prefix and full vector, as one in-memory matrix (see vector_matrix.ts). */
  loadVectors(): Promise<VectorMatrix>;
  /** The chunks at rows named by a matrix's row handles, in the order asked. */
  chunksAt(rowIds: readonly bigint[]): Promise<Chunk[]>;
  /** Rebuild the search indexes after writes (full-text; an ANN index on the prefix column when asked). */
  optimize(opts?: { ann?: boolean }): Promise<void>;
  close(): void;
}
