import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runRagAsk, runRagEval, runRagIndex, runRagQuery } from '../src/cli/rag.js';
import { factCorpus } from '../src/data/fact_corpus.js';
import { saveEmbedder } from '../src/io/embedder_dir.js';
import { Embedder } from '../src/models/embedder.js';
import { parseEmbedderConfig } from '../src/models/embedder_config.js';
import { indexFiles } from '../src/rag/indexer.js';
import { LanceDBStore, lanceCpuThreads, unitPrefix } from '../src/rag/lancedb_store.js';
import { runRagDemo } from '../src/rag/demo.js';
import { ragCommand } from '../src/cli/rag.js';
import { Retriever } from '../src/rag/retriever.js';
import { rerankFullVector } from '../src/rag/two_stage.js';
import { openForIndexing, openRetriever } from '../src/rag/open_store.js';
import { TextEmbedder } from '../src/rag/text_embedder.js';
import { WordTokenizer } from '../src/tokenizers/word.js';
import { Rng } from '../src/util/rng.js';
import { UserError } from '../src/util/errors.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { modelFiles } from '../src/io/model_dir.js';
import { tinyGPT, tinyTokenizer } from './serve_fixture.js';

const chunkOpts = { maxTokens: 32, overlapTokens: 4 };

describe('rag: indexing into LanceDB and searching it', () => {
  const work = mkdtempSync(join(tmpdir(), 'attn-rag-store-'));
  const corpus = join(work, 'corpus');
  const storeDir = join(work, 'store');
  const { documents, questions } = factCorpus({ towns: 12, questionsPerTown: 2, seed: 3 });
  const embDir = join(work, 'emb');
  let store: LanceDBStore;
  let embedder: TextEmbedder;
  const log: string[] = [];

  before(async () => {
    mkdirSync(corpus);
    for (const d of documents) writeFileSync(join(corpus, d.file), d.text);
    writeFileSync(join(corpus, 'broken.txt'), Buffer.from([0x50, 0x4b, 0x03, 0x04, 0x00, 0x00]));
    const tok = WordTokenizer.fromText(documents.map((d) => d.text).join('\n') + questions.map((q) => q.query).join('\n'), 2048);
    const model = new Embedder(parseEmbedderConfig({ vocab_size: tok.vocabSize, d_model: 16, n_layer: 1, n_head: 2, max_len: 64, matryoshka_dims: [4, 8] }), new Rng(1)).eval();
    saveEmbedder(embDir, model, tok);
    embedder = TextEmbedder.load(embDir);
    store = await openForIndexing(storeDir, embedder);
  });
  after(() => {
    store?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('indexes a directory, skipping a binary file with a message naming it', async () => {
    const r = await indexFiles(store, embedder, [corpus], { chunk: chunkOpts, onSkip: (s) => log.push(`skipping ${s.source}: ${s.reason}`) });
    assert.equal(r.files, 13);
    assert.equal(r.indexed, 12);
    assert.deepEqual(log, [`skipping ${join(corpus, 'broken.txt')}: binary file`]);
    assert.equal(await store.count(), r.chunks);
    assert.ok(r.chunks > 12, 'documents longer than a chunk are cut');
    assert.equal(store.info.prefixDim, 4);
    const files = await store.files();
    assert.equal(files.length, 12);
    assert.equal(files.reduce((n, f) => n + f.chunks, 0), r.chunks);
  });

  it('searches by keywords, by meaning (two-stage), and both (RRF)', async () => {
    const retriever = await openRetriever(storeDir);
    try {
      const town = documents[4]!;
      const name = town.text.split('\n')[0]!.slice(2);
      const bm25 = (await retriever.search(name, { mode: 'bm25', k: 3 })).results;
      assert.equal(bm25[0]!.chunk.source, join(corpus, town.file), 'the town\'s name finds its document first');
      // A chunk's own text is nearest to itself: the prefix stage must keep it, the full rerank put it first.
      const [c] = (await retriever.search(name, { mode: 'bm25', k: 1 })).results;
      const dense = (await retriever.search(c!.chunk.text, { mode: 'dense', k: 5 })).results;
      assert.equal(dense[0]!.chunk.id, c!.chunk.id);
      assert.ok(Math.abs(dense[0]!.score - 1) < 1e-5);
      for (let i = 1; i < dense.length; i++) assert.ok(dense[i]!.score <= dense[i - 1]!.score);
      const { results, timing } = await retriever.search(c!.chunk.text, { mode: 'hybrid', k: 4 });
      assert.equal(results.length, 4);
      assert.equal(results[0]!.chunk.id, c!.chunk.id, 'first in both lists, first when fused');
      assert.ok(Math.abs(results[0]!.score - 2 / 61) < 1e-9);
      assert.ok(timing.embedMs > 0 && timing.totalMs >= timing.embedMs);
      // The in-memory matrix gives what the database's own prefix search + rerank gives.
      const q = retriever.embedder.embedQuery(name);
      const inMemory = await retriever.dense(q, 5, 50);
      const viaDb = rerankFullVector(q, await retriever.store.prefixSearch(unitPrefix(q, retriever.store.info.prefixDim), 50), 5);
      assert.deepEqual(inMemory.map((h) => h.chunk.id), viaDb.map((h) => h.chunk.id));
      inMemory.forEach((h, i) => assert.ok(Math.abs(h.score - viaDb[i]!.score) < 1e-5));
      assert.deepEqual(inMemory[0]!.chunk, viaDb[0]!.chunk, 'the chunk fetched by row id is the row searched');
      await assert.rejects(retriever.search('   ', { mode: 'dense' }), /query is empty/);
      await assert.rejects(retriever.search('', { mode: 'bm25' }), /query is empty/);
      assert.match(await runRagQuery(name, { store: storeDir, mode: 'bm25', k: 2 }), new RegExp(`^1\\. ${join(corpus, town.file)} \\[\\d+–\\d+\\] score`));
    } finally {
      retriever.store.close();
    }
  });

  it('skips unchanged files; a changed file replaces its chunks in one commit', async () => {
    const again = await indexFiles(store, embedder, [corpus], { chunk: chunkOpts });
    assert.equal(again.indexed, 0);
    assert.equal(again.unchanged, 12);
    const path = join(corpus, documents[0]!.file);
    const before = (await store.files()).find((f) => f.source === path)!;
    const rt = new Retriever(store, embedder);
    await rt.matrix(); // loaded before the write
    writeFileSync(path, 'A short new text. Nothing else.');
    const v0 = await store.version();
    const r = await indexFiles(store, embedder, [corpus], { chunk: chunkOpts });
    assert.equal(r.indexed, 1);
    assert.equal(r.unchanged, 11);
    const afterFile = (await store.files()).find((f) => f.source === path)!;
    assert.equal(afterFile.chunks, 1);
    assert.notEqual(afterFile.fileHash, before.fileHash);
    const hits = (await openRetriever(storeDir).then(async (rt) => {
      try {
        return (await rt.search('short new text', { mode: 'bm25', k: 20 })).results;
      } finally {
        rt.store.close();
      }
    })).filter((h) => h.chunk.source === path);
    assert.deepEqual(hits.map((h) => h.chunk.id), [`${path}#0`], 'the old chunks #1… are gone');
    // A retriever that loaded the vectors before the write reloads them: the new chunk is found by meaning too.
    const dense = (await rt.search('A short new text. Nothing else.', { mode: 'dense', k: 3 })).results;
    assert.equal(dense[0]!.chunk.id, `${path}#0`);
    assert.ok((await store.version()) > v0);
  });

  it('nothing half-written: a replace is one commit, and a failing one changes nothing', async () => {
    const path = join(corpus, documents[1]!.file);
    const old = (await store.files()).find((f) => f.source === path)!;
    const text = readFileSync(path, 'utf8');
    const vectors = embedder.embed([text.slice(0, 40), text.slice(40, 80)]);
    const mk = (i: number, vector: Float32Array) => ({ id: `${path}#${i}`, source: path, ordinal: i, start: i * 40, end: i * 40 + 40, text: text.slice(i * 40, i * 40 + 40), tokens: 8, fileHash: 'h2', vector });
    const v0 = await store.version();
    await store.replaceFiles([{ source: path, chunks: [mk(0, vectors[0]!), mk(1, vectors[1]!)] }]);
    assert.equal(await store.version(), v0 + 1, 'inserting the new chunks and deleting the old is one version');
    assert.equal((await store.files()).find((f) => f.source === path)!.chunks, 2);
    assert.ok(old.chunks > 2);
    // A bad chunk (wrong dimension) fails the whole write before anything is committed.
    await assert.rejects(store.replaceFiles([{ source: path, chunks: [mk(0, vectors[0]!), mk(1, new Float32Array(3))] }]), /3-dimensional vector/);
    assert.equal(await store.version(), v0 + 1);
    assert.equal((await store.fileHash(path)), 'h2');
  });

  it('a commit failing while the next batch embeds stops the run with its error (no crash, earlier batches kept)', async () => {
    const dir = join(work, 'failing-store');
    const real = await openForIndexing(dir, embedder);
    let calls = 0;
    // The real store, with its second commit made to fail (as a full disk would).
    const failing = Object.create(real) as typeof real;
    failing.replaceFiles = async (files) => {
      if (++calls === 2) throw new Error('disk full (injected)');
      return real.replaceFiles(files);
    };
    try {
      await assert.rejects(indexFiles(failing, embedder, [corpus], { chunk: chunkOpts, batch: 4 }), /disk full \(injected\)/);
      assert.ok(calls >= 2);
      assert.ok((await real.count()) > 0, 'the first batch stays committed');
    } finally {
      real.close();
    }
  });

  it('refuses an embedder of another dimension, a missing or broken store, and an empty queries file', async () => {
    const tok = WordTokenizer.fromText('a b c', 16);
    const other = new Embedder(parseEmbedderConfig({ vocab_size: tok.vocabSize, d_model: 8, n_layer: 1, n_head: 2, matryoshka_dims: [4] }), new Rng(2));
    saveEmbedder(join(work, 'emb8'), other, tok);
    await assert.rejects(openForIndexing(storeDir, TextEmbedder.load(join(work, 'emb8'))), /gives 8-dimensional vectors but store .* holds 16-dimensional ones/);
    await assert.rejects(openRetriever(storeDir, join(work, 'emb8')), /8-dimensional/);
    await assert.rejects(openRetriever(join(work, 'nope')), /store .*nope does not exist/);
    writeFileSync(join(work, 'file-store'), 'x');
    await assert.rejects(openRetriever(join(work, 'file-store')), /cannot be opened: it is not a directory/);
    mkdirSync(join(work, 'empty-store'));
    await assert.rejects(openRetriever(join(work, 'empty-store')), /cannot be opened: .*attn-store.json is missing/);
    writeFileSync(join(work, 'not-a-store-file.txt'), 'x');
    await assert.rejects(openForIndexing(corpus, embedder), /exists and is not an attn store/);
    writeFileSync(join(work, 'q-empty.jsonl'), '\n');
    await assert.rejects(runRagEval({ store: storeDir, queries: join(work, 'q-empty.jsonl'), modes: ['bm25'] }), /holds no queries/);
    writeFileSync(join(work, 'q-bad.jsonl'), '{"query": "x"}\n');
    await assert.rejects(runRagEval({ store: storeDir, queries: join(work, 'q-bad.jsonl'), modes: ['bm25'] }), /q-bad.jsonl:1: "relevant"/);
  });

  it('indexing more into a store takes its recorded embedder and refuses another of the same dimension', async () => {
    // Another model of the same shape: its vectors fit the store, but the store's queries embed with the recorded one.
    const tok = embedder.tokenizer;
    const other = new Embedder(parseEmbedderConfig({ vocab_size: embedder.model.config.vocab_size, d_model: 16, n_layer: 1, n_head: 2, max_len: 64, matryoshka_dims: [4, 8] }), new Rng(7)).eval();
    saveEmbedder(join(work, 'emb-other'), other, tok);
    await assert.rejects(openForIndexing(storeDir, TextEmbedder.load(join(work, 'emb-other'))), (e: Error) => e instanceof UserError && /^embedder .*emb-other is not the one store .*store was indexed with \(.*emb\); use that embedder or a new store$/.test(e.message));
    await assert.rejects(runRagIndex([corpus], { store: storeDir, embedder: join(work, 'emb-other'), chunkTokens: 32, overlapTokens: 4, batch: 256, backend: 'js' }, () => {}), /is not the one store/);
    // The same model copied elsewhere is the same embedder.
    cpSync(embDir, join(work, 'emb-copy'), { recursive: true });
    (await openForIndexing(storeDir, TextEmbedder.load(join(work, 'emb-copy')))).close();
    // Without --embedder: the store's own (a file an earlier test wrote a fake hash for is indexed again; then every file is unchanged).
    const flags = { store: storeDir, chunkTokens: 32, overlapTokens: 4, batch: 256, backend: 'js' };
    const first = JSON.parse(await runRagIndex([corpus], flags, () => {}));
    assert.equal(first.indexed + first.unchanged, 12);
    const again = JSON.parse(await runRagIndex([corpus], flags, () => {}));
    assert.deepEqual([again.indexed, again.unchanged], [0, 12]);
    // A new store needs one named; the flag is not required by the parser, the message says when it is.
    const index = ragCommand().commands.find((c) => c.name() === 'index')!;
    index.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
    await assert.rejects(index.parseAsync(['--store', join(work, 'new-store'), '--backend', 'js', corpus], { from: 'user' }), (e: Error) => e instanceof UserError && /store .*new-store is new: name the embedder to index it with \(--embedder DIR\)/.test(e.message));
  });

  it('an embedder retrained in place is refused by the store it indexed (its weights\' fingerprint is recorded); a store without one is still opened', async () => {
    const dir = join(work, 'emb-retrained');
    cpSync(embDir, dir, { recursive: true });
    const store2 = join(work, 'store-retrained');
    const s = await openForIndexing(store2, TextEmbedder.load(dir));
    await indexFiles(s, TextEmbedder.load(dir), [corpus], { chunk: chunkOpts, batch: 64 });
    s.close();
    assert.equal(JSON.parse(readFileSync(join(store2, 'attn-store.json'), 'utf8')).embedderFingerprint, TextEmbedder.load(dir).fingerprint());
    (await openRetriever(store2)).store.close();
    // The same directory, other weights (as `attn embed train --out` over it would leave).
    const other = new Embedder(parseEmbedderConfig({ vocab_size: embedder.model.config.vocab_size, d_model: 16, n_layer: 1, n_head: 2, max_len: 64, matryoshka_dims: [4, 8] }), new Rng(9)).eval();
    saveEmbedder(dir, other, embedder.tokenizer);
    const changed = (e: Error) => e instanceof UserError && /^embedder .*emb-retrained has changed since store .*store-retrained was indexed with it \(its weights' fingerprint is [0-9a-f]{16}, the store recorded [0-9a-f]{16}: retrained or replaced in place\?\); re-index into a new store, or restore the embedder it was made with$/.test(e.message);
    await assert.rejects(openRetriever(store2), changed);
    await assert.rejects(openForIndexing(store2, TextEmbedder.load(dir)), changed);
    // A store described before fingerprints were recorded opens with the model at its path, as before.
    const metaPath = join(store2, 'attn-store.json');
    const meta = JSON.parse(readFileSync(metaPath, 'utf8'));
    delete meta.embedderFingerprint;
    writeFileSync(metaPath, JSON.stringify(meta));
    (await openRetriever(store2)).store.close();
  });

  it('attn rag eval --json: one line per mode with the issue\'s keys', async () => {
    const q = join(work, 'queries.jsonl');
    writeFileSync(q, questions.map((x) => JSON.stringify({ query: x.query, relevant: [join(corpus, x.file)] })).join('\n'));
    const lines = (await runRagEval({ store: storeDir, queries: q, modes: ['bm25', 'dense', 'hybrid'], json: true })).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.mode), ['bm25', 'dense', 'hybrid']);
    for (const l of lines) {
      assert.deepEqual(Object.keys(l), ['mode', 'recall@10', 'mrr', 'ndcg@10', 'queries']);
      assert.equal(l.queries, questions.length);
      for (const k of ['recall@10', 'mrr', 'ndcg@10']) assert.ok(l[k] >= 0 && l[k] <= 1);
    }
    // Keywords find most towns in a 12-document corpus (an untrained dense model need not).
    assert.ok(lines[0].mrr > 0.5, `bm25 MRR ${lines[0].mrr}`);
  });

  it('dense search exact or two-stage; attn rag eval scores both (dense, dense-exact)', async () => {
    const retriever = await openRetriever(storeDir);
    try {
      const matrix = (await retriever.matrix())!;
      const n = matrix.ids.length;
      const q = embedder.embedQuery(questions[0]!.query);
      const exact = (await retriever.search(questions[0]!.query, { mode: 'dense', dense: 'exact', k: 5 })).results;
      // Exact search is the full-vector scan: the same ids and cosines as the matrix's own top 5.
      assert.deepEqual(exact.map((r) => r.chunk.id), matrix.topByFull(q, 5).map((r) => matrix.ids[r.row]));
      // Two-stage with every chunk as a candidate is exact too; with 5 candidates it is the prefix's top 5, reranked.
      const all = (await retriever.search(questions[0]!.query, { mode: 'dense', dense: 'two-stage', k: 5, depth: n })).results;
      assert.deepEqual(all.map((r) => r.chunk.id), exact.map((r) => r.chunk.id));
      const few = (await retriever.search(questions[0]!.query, { mode: 'dense', k: 5, depth: 5 })).results;
      const prefixTop = matrix.topByPrefix(unitPrefix(q, store.info.prefixDim), 5).map((r) => matrix.ids[r.row]);
      assert.deepEqual(few.map((r) => r.chunk.id).sort(), [...prefixTop].sort());
    } finally {
      retriever.store.close();
    }
    const qf = join(work, 'queries-dense.jsonl');
    writeFileSync(qf, questions.map((x) => JSON.stringify({ query: x.query, relevant: [join(corpus, x.file)] })).join('\n'));
    const table = await runRagEval({ store: storeDir, queries: qf, modes: ['dense', 'dense-exact'] });
    const rows = table.trim().split('\n');
    assert.match(rows[0]!, /^mode\trecall@10\tMRR\tnDCG@10\tms\/search/);
    assert.deepEqual(rows.slice(1).map((r) => r.split('\t')[0]), ['dense', 'dense-exact']);
    for (const r of rows.slice(1)) assert.ok(Number(r.split('\t')[4]) >= 0, r);
    await assert.rejects(runRagEval({ store: storeDir, queries: qf, modes: ['dense-approx' as never] }), /dense-approx/);
  });

  it('attn rag ask answers from the passages that fit and lists their sources', async () => {
    const lm = join(work, 'lm');
    writeDirAtomic(lm, modelFiles(tinyGPT(3, 320), tinyTokenizer()));
    const out = await runRagAsk(documents[2]!.text.split('\n')[0]!.slice(2), { store: storeDir, model: lm, mode: 'bm25', k: 3, maxNewTokens: 4, temperature: 0, seed: 1 });
    const [, sources] = out.split('\n\nSources:\n');
    const lines = sources!.trim().split('\n');
    // A 320-character context less 4 for the answer holds the best passage and maybe one more, not all three.
    assert.ok(lines.length >= 1 && lines.length < 3, sources);
    lines.forEach((l, i) => assert.match(l, new RegExp(`^\\[${i + 1}\\] ${work}/corpus/\\w+\\.md characters \\d+–\\d+ \\(.*#\\d+\\)$`)));
    assert.ok(lines[0]!.includes(documents[2]!.file));
  });
});

describe('rag: keyword search', () => {
  const work = mkdtempSync(join(tmpdir(), 'attn-rag-bm25-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  it('orders chunks whose BM25 scores tie by id, also where the tie straddles the k-th place (LanceDB gave ties in no fixed order)', async () => {
    const store = await LanceDBStore.openOrCreate(join(work, 'store'), { dim: 2, prefixDim: 1, embedder: 'none' });
    try {
      // Twelve chunks with the same text (the same BM25 score), written in the reverse of their ids' order over two
      // commits, among chunks that do not match; one chunk matches better than all of them.
      const chunk = (name: string, text: string) => ({ id: `${name}#0`, source: name, fileHash: 'h', ordinal: 0, start: 0, end: text.length, tokens: 4, text, vector: Float32Array.of(1, 0) });
      const tied = Array.from({ length: 12 }, (_, i) => `t${String(i).padStart(2, '0')}`);
      const rows = [chunk('best', 'the old mill mill mill by the river'), ...tied.map((t) => chunk(t, 'the old mill by the river')), ...['a', 'b', 'c'].map((x) => chunk(x, `the ${x} lane`))];
      const reversed = rows.slice().reverse();
      for (const half of [reversed.slice(0, 8), reversed.slice(8)]) await store.replaceFiles(half.map((c) => ({ source: c.source, chunks: [c] })));
      await store.optimize();
      for (const k of [3, 6, 13, 20]) {
        const hits = await store.keywordSearch('old mill', k);
        assert.deepEqual(hits.map((h) => h.chunk.id), ['best#0', ...tied.map((t) => `${t}#0`)].slice(0, k), `k ${k}`);
        assert.equal(new Set(hits.slice(1).map((h) => h.score)).size, 1, 'the twelve tie');
      }
    } finally {
      store.close();
    }
  });
});

describe('rag: the HNSW index on the prefix column (--ann)', () => {
  const work = mkdtempSync(join(tmpdir(), 'attn-rag-ann-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  const unit = (rng: Rng, n: number): Float32Array => {
    const v = Float32Array.from({ length: n }, () => rng.normal());
    const norm = Math.hypot(...v);
    return v.map((x) => x / norm);
  };

  it('finds what an exact scan finds (the "dot" index returned unrelated rows; cosine does not)', async () => {
    const rng = new Rng(5);
    const dim = 32;
    const prefixDim = 16;
    const store = await LanceDBStore.openOrCreate(join(work, 'store'), { dim, prefixDim, embedder: 'random unit vectors' });
    try {
      const rows = 5000;
      const chunks = Array.from({ length: rows }, (_, i) => ({
        id: `f${i}#0`, source: `f${i}`, fileHash: 'h', ordinal: 0, start: 0, end: 1, tokens: 1, text: `row ${i}`, vector: unit(rng, dim),
      }));
      await store.replaceFiles(chunks.map((c) => ({ source: c.source, chunks: [c] })));
      const queries = Array.from({ length: 10 }, () => unitPrefixOf(unit(rng, dim), prefixDim));
      const exactTop = await Promise.all(queries.map(async (q) => (await store.prefixSearch(q, 10)).map((h) => h.chunk.id)));
      await store.optimize({ ann: true });
      assert.ok((await store.listIndexNames()).includes('prefix_hnsw_cosine'), 'the ANN index was built');
      let overlap = 0;
      for (const [i, q] of queries.entries()) {
        const hits = await store.prefixSearch(q, 10);
        overlap += hits.filter((h) => exactTop[i]!.includes(h.chunk.id)).length;
        // Scores stay cosine similarities of unit vectors, best first.
        for (const h of hits) assert.ok(h.score <= 1 + 1e-5 && h.score >= -1 - 1e-5, `score ${h.score}`);
        assert.ok(hits.every((h, j) => j === 0 || hits[j - 1]!.score >= h.score - 1e-6));
      }
      // An approximate index may miss an occasional neighbour; the broken one shared about 0 of 100.
      assert.ok(overlap >= 90, `ANN found ${overlap} of the exact 100 neighbours`);
    } finally {
      store.close();
    }
  });
});

function unitPrefixOf(v: Float32Array, n: number): Float32Array {
  const p = v.slice(0, n);
  const norm = Math.hypot(...p);
  return p.map((x) => x / norm);
}

describe('rag demo: the fusion is chosen on the development questions', () => {
  const work = mkdtempSync(join(tmpdir(), 'attn-rag-demo-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  it('writes both question sets, tries each fusion setting on the development ones, and scores the test ones with the best', async () => {
    const grid = [{ rrfK: 10, denseWeight: 0.25 }, { rrfK: 60, denseWeight: 1 }];
    const r = await runRagDemo({
      out: work, towns: 12, questionsPerTown: 2, devQuestionsPerTown: 2, seed: 3, pairs: 300, passageWords: 48, fusionGrid: grid,
      train: { steps: 4, evalInterval: 4, evalPairs: 10, batchSize: 8, dModel: 16, layers: 1, heads: 2, maxLen: 64 },
    });
    assert.equal(readFileSync(join(work, 'queries.jsonl'), 'utf8').trim().split('\n').length, 24);
    assert.equal(readFileSync(join(work, 'dev_queries.jsonl'), 'utf8').trim().split('\n').length, 24);
    assert.deepEqual(r.dev.map((d) => d.fusion), grid);
    const sum = (s: { 'recall@10': number; 'ndcg@10': number }) => s['recall@10'] + s['ndcg@10'];
    const best = Math.max(...r.dev.map((d) => sum(d.scores)));
    assert.equal(sum(r.dev.find((d) => d.fusion.rrfK === r.fusion.rrfK && d.fusion.denseWeight === r.fusion.denseWeight)!.scores), best);
    assert.deepEqual(r.scores.map((s) => s.mode), ['bm25', 'dense', 'dense-exact', 'hybrid']);
    assert.ok(r.scores.every((s) => s.queries === 24));
    assert.deepEqual(r.devModes.map((s) => [s.mode, s.queries]), [['bm25', 24], ['dense', 24]], 'BM25 and dense on the development questions');
  });

  it('without space tokens the window and the chunks hold more words; described queries, keep rates, hard negatives, the untitled and title rates are recorded with the pairs; lower case in tokenizer.json', async () => {
    const run = async (dir: string, spaceTokens: boolean) => runRagDemo({
      out: join(work, dir), towns: 12, questionsPerTown: 1, devQuestionsPerTown: 0, seed: 3, pairs: 300, passageWords: 48, multiFactRate: 0.5, describedRate: 0.5, keepRate: 0.5, multiKeepRate: 0.75, hardNegatives: !spaceTokens, untitledRate: spaceTokens ? 0 : 0.5, titleRate: spaceTokens ? 0 : 0.1, samePassageRate: spaceTokens ? 0 : 0.5,
      train: { steps: 2, evalInterval: 2, evalPairs: 10, batchSize: 8, dModel: 16, layers: 1, heads: 2, maxLen: 64, spaceTokens, lowercase: !spaceTokens },
    });
    const words = await run('words', false);
    const spaced = await run('spaced', true);
    assert.equal(JSON.parse(readFileSync(join(words.embedder, 'tokenizer.json'), 'utf8')).spaces, false);
    assert.equal(JSON.parse(readFileSync(join(spaced.embedder, 'tokenizer.json'), 'utf8')).spaces, undefined);
    assert.ok(words.index.chunks < spaced.index.chunks, `${words.index.chunks} chunks of 64 words and marks, ${spaced.index.chunks} of 64 tokens with spaces`);
    const spec = JSON.parse(readFileSync(join(words.embedder, 'training.json'), 'utf8')).pairs;
    assert.equal(spec.describedRate, 0.5, 'recorded, so the evaluation rebuilds the same pairs');
    assert.deepEqual([spec.keepRate, spec.multiKeepRate], [0.5, 0.75], 'the keep rates too');
    assert.equal(spec.hardNegatives, true, 'and the mined negatives');
    assert.equal(JSON.parse(readFileSync(join(spaced.embedder, 'training.json'), 'utf8')).pairs.hardNegatives, undefined);
    assert.equal(spec.untitledRate, 0.5, 'the untitled rate too');
    assert.equal(JSON.parse(readFileSync(join(spaced.embedder, 'training.json'), 'utf8')).pairs.untitledRate, undefined);
    assert.equal(spec.titleRate, 0.1, 'the title rate too');
    assert.equal(spec.samePassageRate, 0.5, 'and the same-passage rate');
    assert.equal(JSON.parse(readFileSync(join(spaced.embedder, 'training.json'), 'utf8')).pairs.titleRate, undefined);
    assert.equal(JSON.parse(readFileSync(join(words.embedder, 'tokenizer.json'), 'utf8')).lowercase, true, 'a lower-case tokenizer says so');
    assert.equal(JSON.parse(readFileSync(join(spaced.embedder, 'tokenizer.json'), 'utf8')).lowercase, undefined);
    assert.ok(words.scores.every((s) => s.queries === 12));
  });
});

describe('attn rag demo flags', () => {
  it('refuses a keep rate outside 0..1', async () => {
    for (const flag of ['--keep-rate', '--multi-keep-rate', '--untitled-rate', '--title-rate', '--same-passage-rate']) {
      const demo = ragCommand().commands.find((c) => c.name() === 'demo')!;
      demo.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
      await assert.rejects(demo.parseAsync(['--out', '/nonexistent/never-written', flag, '1.5'], { from: 'user' }), /between 0 and 1/);
    }
  });

  it('refuses a pooling other than mean or idf, and a train seed that is not an integer', async () => {
    for (const args of [['--pooling', 'max'], ['--train-seed', 'x']]) {
      const demo = ragCommand().commands.find((c) => c.name() === 'demo')!;
      demo.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
      await assert.rejects(demo.parseAsync(['--out', '/nonexistent/never-written', ...args], { from: 'user' }), args[0] === '--pooling' ? /Allowed choices are mean, idf/ : /not a number/);
    }
  });

  it('refuses a hard-negative kind other than query or facts', async () => {
    const demo = ragCommand().commands.find((c) => c.name() === 'demo')!;
    demo.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
    await assert.rejects(demo.parseAsync(['--out', '/nonexistent/never-written', '--hard-negatives', 'bogus'], { from: 'user' }), /"query" or "facts"/);
  });
});

describe('LanceDB CPU pool', () => {
  it('has at least 4 threads unless the user chose (its full-text index builder deadlocked with 2 on a 2-core machine)', () => {
    const before = process.env.LANCE_CPU_THREADS;
    try {
      delete process.env.LANCE_CPU_THREADS;
      assert.ok(Number(lanceCpuThreads()) >= 4);
      process.env.LANCE_CPU_THREADS = '3';
      assert.equal(lanceCpuThreads(), '3');
    } finally {
      if (before === undefined) delete process.env.LANCE_CPU_THREADS;
      else process.env.LANCE_CPU_THREADS = before;
    }
  });
});
