import { existsSync, mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
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
 *   build        the large store: labelled towns (with their questions) and distractor towns
 *   hybrid_query latency of a hybrid query over `chunks` chunks, query embedding included
 *   two_stage    Matryoshka prefix search + full rerank vs exact full-dimension search, both over
 *                the in-memory matrix the retriever searches, on every labelled question: recall@10
 *                against the labels for each, p50/p95 per ranking (embedding and the chunks' text
 *                excluded: the same for both), the speed ratio, the share of the exact top 10 found,
 *                and the database's exact scan. The two-stage figures are the default int8 prefix
 *                scan's; fp32_prefix_* the same search with the fp32 prefixes (the rerank is fp32 in both)
 */

export interface BenchOptions {
  embedder: string;
  out?: string;
  chunks: number;
  queries: number;
  /** Build the HNSW index on the prefix column, so the first dense stage is a graph search rather than a scan. */
  ann?: boolean;
  /** Towns whose questions are the labelled queries (factCorpus at `seed`, 2 questions each; default 300 at seed 1: the demo's corpus and test questions at its defaults). */
  labelledTowns?: number;
  seed?: number;
  /** Towns written as files for the indexing line (default 1 000). */
  indexFiles?: number;
  /** Candidate depths of the two-stage search to measure (default 50 and 200). */
  candidates?: number[];
  log?: (s: string) => void;
}

const quantile = (xs: readonly number[], q: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};
const r3 = (x: number) => Number(x.toFixed(3));

/** What identifies an embedder for the store cache: its directory and its files' sizes and times. */
const embedderKey = (dir: string): string =>
  resolve(dir) + ':' + readdirSync(dir).sort().map((f) => { const s = statSync(join(dir, f)); return `${f}/${s.size}/${Math.round(s.mtimeMs)}`; }).join(',');

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
    const small = factCorpus({ towns: o.indexFiles ?? 1000, questionsPerTown: 1, seed: 7 });
    for (const d of small.documents) writeFileSync(join(files, d.file), d.text);
    const s1 = await openForIndexing(join(root, 'index-store'), embedder);
    try {
      const r = await indexFiles(s1, embedder, [files], { chunk });
      yield { workload: 'rag_index', files: r.indexed, chunks: r.chunks, seconds: r3(r.seconds), chunks_per_s: Math.round(r.chunksPerSecond), dim: embedder.dim };
    } finally {
      s1.close();
    }

    // 2. A large store: the labelled towns (the demo's corpus at its defaults, so a retriever the demo trained
    //    knows them) and, to fill it, distractor towns from the same generator; built in memory in batches
    //    (the same chunker, embedder and commits, without files). Sources are "labelled/…" and "distractor/…",
    //    and a distractor town that shares a labelled town's name is left out, so the labels stay true.
    const labelled = factCorpus({ towns: o.labelledTowns ?? 300, questionsPerTown: 2, seed: o.seed ?? 1 });
    const labelledNames = new Set(labelled.documents.map((d) => d.file));
    const distractors = factCorpus({ towns: Math.ceil(o.chunks / 2), questionsPerTown: 0, seed: 11 }).documents.filter((d) => !labelledNames.has(d.file));
    const documents = [
      ...labelled.documents.map((d) => ({ source: `labelled/${d.file}`, text: d.text })),
      ...distractors.map((d) => ({ source: `distractor/${d.file}`, text: d.text })),
    ];
    const asked = labelled.questions.map((q) => ({ query: q.query, source: `labelled/${q.file}` }));
    const storeDir = join(root, 'large-store');
    // The store is reused when an earlier run built the same one (the same embedder files, chunks and corpus):
    // building it is most of the bench's time. Anything else is rebuilt from nothing.
    const key = JSON.stringify({ version: 2, embedder: embedderKey(o.embedder), chunks: o.chunks, labelledTowns: o.labelledTowns ?? 300, seed: o.seed ?? 1 });
    const keyFile = join(root, 'large-store.key');
    const reuse = existsSync(keyFile) && readFileSync(keyFile, 'utf8') === key;
    if (!reuse) {
      rmSync(keyFile, { force: true });
      rmSync(storeDir, { recursive: true, force: true });
    }
    const store = await openForIndexing(storeDir, embedder);
    try {
      let n = reuse ? await store.count() : 0;
      if (reuse) log(`reusing the ${n}-chunk store in ${storeDir}\n`);
      const t0 = performance.now();
      for (let i = 0; i < documents.length && n < o.chunks; ) {
        const batch: Array<{ source: string; chunks: StoredChunk[] }> = [];
        let size = 0;
        for (; i < documents.length && size < 4096 && n + size < o.chunks; i++) {
          const d = documents[i]!;
          const cs = chunkDocument(d.source, d.text, (s) => embedder.countTokens(s), chunk).slice(0, o.chunks - n - size);
          batch.push({ source: d.source, chunks: cs.map((c) => ({ ...c, fileHash: 'bench', vector: new Float32Array(0) })) });
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
      if (o.out) writeFileSync(keyFile, key);
      const count = await store.count();
      yield { workload: 'rag_build', chunks: count, labelled_towns: labelled.documents.length, reused: reuse, seconds: r3((built - t0) / 1000), index_seconds: r3((performance.now() - built) / 1000) };

      const retriever = new Retriever(store, embedder);
      const questions = asked.slice(0, o.queries + 10).map((q) => q.query);
      // 3. Hybrid queries, query embedding included; the first 10 warm caches and are not timed.
      const hybrid: number[] = [];
      for (const [i, q] of questions.entries()) {
        const t = performance.now();
        await retriever.search(q, { mode: 'hybrid', k: 10 });
        if (i >= 10) hybrid.push(performance.now() - t);
      }
      yield { workload: 'rag_hybrid_query', chunks: count, queries: hybrid.length, p50_ms: r3(quantile(hybrid, 0.5)), p95_ms: r3(quantile(hybrid, 0.95)) };

      // 4. Two-stage vs exact full-dimension search over the same in-memory matrix (vector_matrix.ts: both
      //    are one matrix–vector product on the backend and a partial selection), interleaved so machine
      //    noise hits both alike, at each candidate depth (more candidates: better recall, a longer rerank),
      //    on every labelled question. The ranking alone is timed: the query's embedding (one per question,
      //    shared) and fetching the k chunks' text afterwards cost the same for both. The quality is recall@10
      //    against the labels: is the question's own town among the ten chunks' sources. The database's own
      //    exact scan is timed beside them.
      const matrix = await retriever.matrix();
      if (!matrix) throw new UserError(`${count} chunks do not fit the in-memory search (${IN_MEMORY_BYTES / 2 ** 20} MiB): bench fewer --chunks`);
      const { prefixDim } = store.info;
      const vectors = asked.map((q) => embedder.embedQuery(q.query));
      const sourceOf = new Map<number, string>();
      const sources = async (rows: ReadonlyArray<{ row: number }>): Promise<string[]> => {
        const missing = rows.filter((r) => !sourceOf.has(r.row));
        const got = await store.chunksAt(missing.map((r) => matrix.rowIds[r.row]!));
        missing.forEach((r, j) => sourceOf.set(r.row, got[j]!.source));
        return rows.map((r) => sourceOf.get(r.row)!);
      };
      const warm = Math.min(10, vectors.length);
      for (const depth of o.candidates ?? [50, 200]) {
        // Three rankings per question: exact, two-stage with the int8 prefix scan (the default) and with the fp32 one.
        const searches = {
          exact: (v: Float32Array) => matrix.topByFull(v, 10),
          int8: (v: Float32Array) => matrix.twoStage(v, unitPrefix(v, prefixDim), depth, 10, 'int8'),
          fp32: (v: Float32Array) => matrix.twoStage(v, unitPrefix(v, prefixDim), depth, 10, 'fp32'),
        };
        const names = Object.keys(searches) as Array<keyof typeof searches>;
        const ms = { exact: [] as number[], int8: [] as number[], fp32: [] as number[] };
        const found = { exact: 0, int8: 0, fp32: 0 };
        const database: number[] = [];
        let overlap = 0;
        let overlapFp32 = 0;
        // The first `warm` questions warm the caches untimed, then every question is timed and scored.
        for (let i = -warm; i < vectors.length; i++) {
          const v = vectors[(i + vectors.length) % vectors.length]!;
          // Rotate which search runs first, so none always finds the caches another left.
          const got = {} as Record<keyof typeof searches, Array<{ row: number; score: number }>>;
          for (let j = 0; j < names.length; j++) {
            const name = names[(((i + j) % names.length) + names.length) % names.length]!;
            const t = performance.now();
            got[name] = searches[name](v);
            if (i >= 0) ms[name].push(performance.now() - t);
          }
          const t4 = performance.now();
          await store.fullSearch(v, 10);
          const t5 = performance.now();
          if (i < 0) continue;
          database.push(t5 - t4);
          const rows = new Set(got.exact.map((h) => h.row));
          overlap += got.int8.filter((h) => rows.has(h.row)).length / Math.max(1, got.exact.length);
          overlapFp32 += got.fp32.filter((h) => rows.has(h.row)).length / Math.max(1, got.exact.length);
          const relevant = asked[i]!.source;
          for (const name of names) if ((await sources(got[name])).includes(relevant)) found[name]++;
        }
        const q = ms.exact.length;
        const p50 = (xs: number[]) => quantile(xs, 0.5);
        yield {
          workload: 'rag_two_stage', chunks: count, dim: store.info.dim, prefix_dim: prefixDim, candidates: depth, queries: q,
          full_recall_at_10: r3(found.exact / q), two_stage_recall_at_10: r3(found.int8 / q), recall_at_10_gap: r3((found.exact - found.int8) / q),
          full_p50_ms: r3(p50(ms.exact)), full_p95_ms: r3(quantile(ms.exact, 0.95)), two_stage_p50_ms: r3(p50(ms.int8)), two_stage_p95_ms: r3(quantile(ms.int8, 0.95)),
          speedup: r3(p50(ms.exact) / p50(ms.int8)), recall_at_10_vs_exact: r3(overlap / q),
          fp32_prefix_recall_at_10: r3(found.fp32 / q), fp32_prefix_p50_ms: r3(p50(ms.fp32)), fp32_prefix_p95_ms: r3(quantile(ms.fp32, 0.95)),
          fp32_prefix_speedup: r3(p50(ms.exact) / p50(ms.fp32)), fp32_prefix_recall_at_10_vs_exact: r3(overlapFp32 / q),
          database_full_p50_ms: r3(quantile(database, 0.5)),
        };
      }
    } finally {
      store.close();
    }
  } finally {
    if (!o.out) rmSync(root, { recursive: true, force: true });
  }
}
