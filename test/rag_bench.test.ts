import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { factCorpus } from '../src/data/fact_corpus.js';
import { saveEmbedder } from '../src/io/embedder_dir.js';
import { Embedder } from '../src/models/embedder.js';
import { parseEmbedderConfig } from '../src/models/embedder_config.js';
import { runRagBench } from '../src/rag/benchmark.js';
import { rowScores, selectTop, topK, VectorMatrix } from '../src/rag/vector_matrix.js';
import { WordTokenizer } from '../src/tokenizers/word.js';
import { Rng } from '../src/util/rng.js';

describe('rag: the in-memory scan', () => {
  it('scores every row with one matrix–vector product and keeps the k best, as a full sort would', () => {
    const rng = new Rng(5);
    const n = 1000;
    const width = 12;
    const m = new Float32Array(n * width).map(() => rng.random() - 0.5);
    const q = new Float32Array(width).map(() => rng.random() - 0.5);
    const scores = rowScores(m, width, n, q);
    for (const r of [0, 17, n - 1]) {
      let s = 0;
      for (let j = 0; j < width; j++) s += q[j]! * m[r * width + j]!;
      assert.ok(Math.abs(scores[r]! - s) < 1e-5);
    }
    const sorted = [...scores].map((score, row) => ({ row, score })).sort((a, b) => b.score - a.score || a.row - b.row);
    assert.deepEqual(topK(m, width, n, q, 25).map((h) => h.row), sorted.slice(0, 25).map((h) => h.row));
    assert.deepEqual(selectTop(scores, 3, 10).map((h) => h.row), sorted.filter((h) => h.row < 3).map((h) => h.row));
    assert.deepEqual(selectTop(scores, n, 0), []);
    // The rerank keeps the k best candidates by the full vectors, in order, as a sort of them would.
    const matrix = new VectorMatrix([...Array(n).keys()].map(String), [...Array(n).keys()].map(BigInt), 4, width, new Float32Array(n * 4), m);
    const candidates = sorted.slice(0, 200).reverse();
    const reranked = matrix.rerank(q, candidates, 7);
    assert.deepEqual(reranked.map((h) => h.row), sorted.slice(0, 7).map((h) => h.row));
    assert.deepEqual(matrix.rerank(q, candidates, 0), []);
  });

  const addon = loadAddon();
  it('on the native backend, the scan is its matrix–vector product and agrees with the loop', { skip: addon ? false : 'native addon not built' }, () => {
    const rng = new Rng(6);
    const n = 3001;
    const width = 40;
    const m = new Float32Array(n * width).map(() => rng.random() - 0.5);
    const q = new Float32Array(width).map(() => rng.random() - 0.5);
    const loop = rowScores(m, width, n, q);
    registerBackend(createNativeBackend(addon!));
    setBackend('native');
    try {
      const product = rowScores(m, width, n, q);
      for (let r = 0; r < n; r++) assert.ok(Math.abs(product[r]! - loop[r]!) < 1e-4, `row ${r}`);
    } finally {
      setBackend('js');
    }
  });
});

describe('rag: the bench on labelled towns among distractors', () => {
  const work = mkdtempSync(join(tmpdir(), 'attn-rag-bench-'));
  after(() => rmSync(work, { recursive: true, force: true }));

  it('scores two-stage and exact search on the labelled questions, and reuses the store it built', async () => {
    const { documents, questions } = factCorpus({ towns: 10, questionsPerTown: 2, seed: 3 });
    const tok = WordTokenizer.fromText(documents.map((d) => d.text).join('\n') + questions.map((q) => q.query).join('\n'), 2048);
    const model = new Embedder(parseEmbedderConfig({ vocab_size: tok.vocabSize, d_model: 16, n_layer: 1, n_head: 2, max_len: 64, matryoshka_dims: [4, 8] }), new Rng(1)).eval();
    const embDir = join(work, 'emb');
    saveEmbedder(embDir, model, tok);
    const run = async () => {
      const lines: Array<Record<string, unknown>> = [];
      for await (const l of runRagBench({ embedder: embDir, out: join(work, 'out'), chunks: 120, queries: 4, labelledTowns: 10, seed: 3, candidates: [8, 120], indexFiles: 20 })) lines.push(l);
      return lines;
    };
    const first = await run();
    const build = first.find((l) => l.workload === 'rag_build')!;
    assert.equal(build.chunks, 120);
    assert.equal(build.labelled_towns, 10);
    assert.equal(build.reused, false);
    const two = first.filter((l) => l.workload === 'rag_two_stage');
    assert.deepEqual(two.map((l) => l.candidates), [8, 120]);
    for (const l of two) {
      assert.equal(l.queries, 20); // every labelled question
      for (const f of ['full_recall_at_10', 'two_stage_recall_at_10', 'full_p50_ms', 'full_p95_ms', 'two_stage_p50_ms', 'two_stage_p95_ms', 'speedup']) assert.equal(typeof l[f], 'number', f);
      assert.ok((l.full_recall_at_10 as number) > 0, 'the labelled towns are in the store and found');
    }
    // With every row a candidate, the rerank is the exact search (up to near-ties: the scan's product and the
    // rerank's loop sum in different orders).
    assert.ok((two[1]!.recall_at_10_vs_exact as number) >= 0.95);
    assert.equal(two[1]!.recall_at_10_gap, 0);
    const second = await run();
    assert.equal(second.find((l) => l.workload === 'rag_build')!.reused, true);
  });
});
