import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { factCorpus } from '../data/fact_corpus.js';
import { chunkDocument } from './chunker.js';
import { indexFiles } from './indexer.js';
import { openForIndexing } from './open_store.js';
import { IN_MEMORY_BYTES, Retriever } from './retriever.js';
import { UserError } from '../util/errors.js';
import type { StoredChunk } from './store.js';
import { unitPrefix } from './lancedb_store.js';
import { TextEmbedder } from './text_embedder.js';

/**
 * `attn rag bench`: the issue's speed goals, measured on generated text with
 * a real embedder. Lines:
 *   index        chunks/s of `attn rag index` (read, chunk, embed, commit) on 1 000 files
 *   hybrid_query latency of a hybrid query over `chunks` chunks, query embedding included
 *   two_stage    Matryoshka prefix search + full rerank vs exact full-dimension search, both over
 *                the in-memory matrix the retriever searches: time per ranking (embedding and the
 *                chunks' text excluded: the same for both), the share of the exact top 10 found,
 *                each search's recall@10 of the question's own document, and the database's exact scan
 */

export interface BenchOptions {
  embedder: string;
  out?: string;
  chunks: number;
  queries: number;
  /** Build the HNSW index on the prefix column, so the first dense stage is a graph search rather than a scan. */
  ann?: boolean;
  log?: (s: string) => void;
}

const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const r3 = (x: number) => Number(x.toFixed(3));

export async function* runRagBench(o: BenchOptions): AsyncGenerator<Record<string, unknown>> {
  const log = o.log ?? (() => {});
  const root = o.out ?? mkdtempSync(join(tmpdir(), 'attn-rag-bench-'));
  mkdirSync(root, { recursive: true });
  const embedder = TextEmbedder.load(o.embedder);
  const chunk = { maxTokens: embedder.maxLen, overlapTokens: Math.floor(embedder.maxLen / 8) };
  try {
    // 1. Indexing throughput through the real pipeline: files on disk to a committed store.
    const files = join(root, 'files');
    rmSync(files, { recursive: true, force: true });
    rmSync(join(root, 'index-store'), { recursive: true, force: true });
    mkdirSync(files, { recursive: true });
    const small = factCorpus({ towns: 1000, questionsPerTown: 1, seed: 7 });
    for (const d of small.documents) writeFileSync(join(files, d.file), d.text);
    const s1 = await openForIndexing(join(root, 'index-store'), embedder);
    try {
      const r = await indexFiles(s1, embedder, [files], { chunk });
      yield { workload: 'rag_index', files: r.indexed, chunks: r.chunks, seconds: r3(r.seconds), chunks_per_s: Math.round(r.chunksPerSecond), dim: embedder.dim };
    } finally {
      s1.close();
    }

    // 2. A large store, built in memory in batches (the same chunker, embedder and commits, without files).
    const towns = Math.ceil(o.chunks / 2);
    const big = factCorpus({ towns, questionsPerTown: 1, seed: 11 });
    const store = await openForIndexing(join(root, 'large-store'), embedder);
    try {
      // A large store left by an earlier run in --out is reused (building it is most of the bench's time).
      let n = o.out ? await store.count() : 0;
      if (n >= o.chunks) log(`reusing the ${n}-chunk store in ${join(root, 'large-store')}\n`);
      const t0 = performance.now();
      for (let i = 0; i < big.documents.length && n < o.chunks; ) {
        const batch: Array<{ source: string; chunks: StoredChunk[] }> = [];
        let size = 0;
        for (; i < big.documents.length && size < 4096 && n + size < o.chunks; i++) {
          const d = big.documents[i]!;
          const cs = chunkDocument(d.file, d.text, (s) => embedder.countTokens(s), chunk).slice(0, o.chunks - n - size);
          batch.push({ source: d.file, chunks: cs.map((c) => ({ ...c, fileHash: 'bench', vector: new Float32Array(0) })) });
          size += cs.length;
        }
        const all = batch.flatMap((b) => b.chunks);
        embedder.embed(all.map((c) => c.text)).forEach((v, j) => (all[j]!.vector = v));
        await store.replaceFiles(batch);
        n += size;
        log(`\rlarge store: ${n}/${o.chunks} chunks`);
      }
      log('\n');
      const built = performance.now();
      // With --ann, an HNSW index on the prefix column makes the first stage cheaper than a scan.
      await store.optimize({ ann: o.ann ?? false });
      const count = await store.count();
      yield { workload: 'rag_build', chunks: count, seconds: r3((built - t0) / 1000), index_seconds: r3((performance.now() - built) / 1000) };

      const retriever = new Retriever(store, embedder);
      const asked = big.questions.slice(0, o.queries + 10);
      const questions = asked.map((q) => q.query);
      // 3. Hybrid queries, query embedding included; the first 10 warm caches and are not timed.
      const hybrid: number[] = [];
      for (const [i, q] of questions.entries()) {
        const t = performance.now();
        await retriever.search(q, { mode: 'hybrid', k: 10 });
        if (i >= 10) hybrid.push(performance.now() - t);
      }
      yield { workload: 'rag_hybrid_query', chunks: count, queries: hybrid.length, p50_ms: r3(quantile(hybrid, 0.5)), p95_ms: r3(quantile(hybrid, 0.95)) };

      // 4. Two-stage vs exact full-dimension search over the same in-memory matrix (vector_matrix.ts),
      //    interleaved so machine noise hits both alike, at a few candidate depths (more candidates:
      //    better recall, a longer rerank). The ranking alone is timed: fetching the k chunks' text
      //    afterwards costs the same for both. The database's own exact scan is timed beside them.
      const matrix = await retriever.matrix();
      if (!matrix) throw new UserError(`${count} chunks do not fit the in-memory search (${IN_MEMORY_BYTES / 2 ** 20} MiB): bench fewer --chunks`);
      const { prefixDim } = store.info;
      for (const depth of [50, 200]) {
        const full: number[] = [];
        const twoStage: number[] = [];
        const database: number[] = [];
        let overlap = 0;
        // Recall@10 of each search against the question's own document: the quality the speed-up must keep.
        let foundFull = 0;
        let foundTwo = 0;
        const sources = async (rows: ReadonlyArray<{ row: number }>) => (await store.chunksAt(rows.map((r) => matrix.rowIds[r.row]!))).map((c) => c.source);
        for (const [i, q] of questions.entries()) {
          const v = embedder.embedQuery(q);
          const t1 = performance.now();
          const exact = matrix.topByFull(v, 10);
          const t2 = performance.now();
          const fast = matrix.rerank(v, matrix.topByPrefix(unitPrefix(v, prefixDim), depth), 10);
          const t3 = performance.now();
          await store.fullSearch(v, 10);
          const t4 = performance.now();
          if (i < 10) continue;
          full.push(t2 - t1);
          twoStage.push(t3 - t2);
          database.push(t4 - t3);
          const rows = new Set(exact.map((h) => h.row));
          overlap += fast.filter((h) => rows.has(h.row)).length / Math.max(1, exact.length);
          const relevant = asked[i]!.file;
          if ((await sources(exact)).includes(relevant)) foundFull++;
          if ((await sources(fast)).includes(relevant)) foundTwo++;
        }
        const p50Full = quantile(full, 0.5);
        const p50Two = quantile(twoStage, 0.5);
        yield {
          workload: 'rag_two_stage', chunks: count, dim: store.info.dim, prefix_dim: prefixDim, candidates: depth, queries: full.length,
          full_p50_ms: r3(p50Full), two_stage_p50_ms: r3(p50Two), speedup: r3(p50Full / p50Two), recall_at_10_vs_exact: r3(overlap / full.length),
          database_full_p50_ms: r3(quantile(database, 0.5)), full_recall_at_10: r3(foundFull / full.length), two_stage_recall_at_10: r3(foundTwo / full.length),
        };
      }
    } finally {
      store.close();
    }
  } finally {
    if (!o.out) rmSync(root, { recursive: true, force: true });
  }
}
