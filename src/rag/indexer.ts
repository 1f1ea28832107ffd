import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { chunkDocument, type ChunkOptions } from './chunker.js';
import { isSkipped, listFiles, readDocument, type Document, type Skipped } from './documents.js';
import type { Chunk, RetrievalStore, StoredChunk } from './store.js';
import type { TextEmbedder } from './text_embedder.js';

/**
 * `attn rag index`: read each file, skip it when its content hash is the one
 * the store already has, otherwise chunk it, embed the chunks in batches,
 * and replace the file's chunks. Files are written to the store a batch at a
 * time, each batch in one commit, so a crash or a bad file never leaves a
 * file half-indexed.
 */

export interface IndexOptions {
  chunk: ChunkOptions;
  /** Chunks embedded (and committed) together; default 256. */
  batch?: number;
  /** Build an ANN index on the prefix column (large stores). */
  ann?: boolean;
  onSkip?: (s: Skipped) => void;
  onProgress?: (p: { files: number; totalFiles: number; chunks: number }) => void;
}

export interface IndexReport {
  files: number;
  indexed: number;
  unchanged: number;
  skipped: Skipped[];
  chunks: number;
  seconds: number;
  /** Chunks embedded and written per second (the unchanged files cost nothing and are not counted). */
  chunksPerSecond: number;
}

/** The hash that decides "unchanged": the text, how it is chunked, and which embedder (its weights too). */
export function contentHash(text: string, chunk: ChunkOptions, embedder: TextEmbedder): string {
  const h = createHash('sha256');
  h.update(JSON.stringify({ chunk, embedder: embedder.fingerprint() }));
  h.update('\0');
  h.update(text);
  return h.digest('hex').slice(0, 32);
}

export async function indexFiles(store: RetrievalStore, embedder: TextEmbedder, paths: readonly string[], o: IndexOptions): Promise<IndexReport> {
  const files = listFiles(paths);
  return indexDocuments(store, embedder, files.map((f) => () => readDocument(f)), o);
}

/**
 * Index documents given as thunks (each read only when its turn comes, so a
 * large directory is not held in memory at once). `attn serve` passes texts
 * uploaded to a vector store here directly.
 */
export async function indexDocuments(store: RetrievalStore, embedder: TextEmbedder, files: ReadonlyArray<() => Document | Skipped>, o: IndexOptions): Promise<IndexReport> {
  embedder.checkStore(store.info, 'store');
  const batchSize = o.batch ?? 256;
  const report: IndexReport = { files: files.length, indexed: 0, unchanged: 0, skipped: [], chunks: 0, seconds: 0, chunksPerSecond: 0 };
  const t0 = performance.now();
  let pending: Array<{ doc: Document; hash: string; chunks: Chunk[] }> = [];
  let pendingChunks = 0;
  let done = 0;
  // Every file's recorded hash in one scan, rather than one query per file.
  const known = new Map((await store.files()).map((f) => [f.source, f.fileHash]));

  // Embedding runs on this thread; LanceDB commits on its own. So a batch's
  // commit is left running while the next batch is chunked and embedded, and
  // awaited before the next commit starts: commits stay one at a time and in
  // order, and a failed one stops the run at the next batch.
  let committing: Promise<void> = Promise.resolve();
  const flush = async () => {
    if (pending.length === 0) return;
    const batch = pending;
    pending = [];
    pendingChunks = 0;
    const all = batch.flatMap((p) => p.chunks);
    const vectors = all.length > 0 ? await embedder.embedAsync(all.map((c) => c.text)) : [];
    let at = 0;
    const writes = batch.map((p) => ({
      source: p.doc.source,
      chunks: p.chunks.map((c): StoredChunk => ({ ...c, fileHash: p.hash, vector: vectors[at++]! })),
    }));
    await committing;
    const commit = store.replaceFiles(writes).then(() => {
      report.indexed += batch.length;
      report.chunks += all.length;
    });
    // Marked handled now: a commit failing while the next batch embeds must not crash the process
    // as an unhandled rejection; the `await committing` above or below rethrows it.
    commit.catch(() => {});
    committing = commit;
  };

  for (const read of files) {
    const doc = read();
    done++;
    if (isSkipped(doc)) {
      report.skipped.push(doc);
      o.onSkip?.(doc);
      continue;
    }
    const hash = contentHash(doc.text, o.chunk, embedder);
    if (known.get(doc.source) === hash) {
      report.unchanged++;
    } else {
      const chunks = chunkDocument(doc.source, doc.text, (s) => embedder.countTokens(s), o.chunk);
      pending.push({ doc, hash, chunks });
      pendingChunks += chunks.length;
      if (pendingChunks >= batchSize) await flush();
    }
    o.onProgress?.({ files: done, totalFiles: files.length, chunks: report.chunks + pendingChunks });
  }
  await flush();
  await committing;
  const tIndexed = performance.now();
  if (report.indexed > 0) await store.optimize({ ann: o.ann });
  report.seconds = (performance.now() - t0) / 1000;
  // Throughput counts the indexing work (read, chunk, embed, commit), not the index rebuild at the end.
  report.chunksPerSecond = report.chunks / Math.max((tIndexed - t0) / 1000, 1e-9);
  return report;
}
