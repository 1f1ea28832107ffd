import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { factCorpus } from '../src/data/fact_corpus.js';
import { saveEmbedder } from '../src/io/embedder_dir.js';
import { Embedder } from '../src/models/embedder.js';
import { parseEmbedderConfig } from '../src/models/embedder_config.js';
import { indexFiles } from '../src/rag/indexer.js';
import { openForIndexing } from '../src/rag/open_store.js';
import { TextEmbedder } from '../src/rag/text_embedder.js';
import { parseServeConfig } from '../src/serve/config.js';
import { startServer, type AttnServer } from '../src/serve/server.js';
import { WordTokenizer } from '../src/tokenizers/word.js';
import { Rng } from '../src/util/rng.js';
import { attr, receiver } from './otlp_receiver.js';
import { postJson, silentLogger, tinyGPT, tinyTokenizer, until } from './serve_fixture.js';

describe('attn serve: vector stores and chat that retrieves', () => {
  const work = mkdtempSync(join(tmpdir(), 'attn-rag-serve-'));
  const { documents } = factCorpus({ towns: 8, questionsPerTown: 1, seed: 9 });
  const townName = (i: number) => documents[i]!.text.split('\n')[0]!.slice(2);
  let server: AttnServer;
  let base: string;
  let rx: Awaited<ReturnType<typeof receiver>>;
  const get = async (path: string) => {
    const r = await fetch(`${base}${path}`);
    return { status: r.status, json: (await r.json()) as any };
  };

  before(async () => {
    const tok = WordTokenizer.fromText(documents.map((d) => d.text).join('\n') + ' What who is are mayor river of', 1024);
    const model = new Embedder(parseEmbedderConfig({ vocab_size: tok.vocabSize, d_model: 16, n_layer: 1, n_head: 2, max_len: 64, matryoshka_dims: [4, 8] }), new Rng(1)).eval();
    saveEmbedder(join(work, 'emb'), model, tok);
    // A store indexed beforehand, as `attn rag index` makes it.
    mkdirSync(join(work, 'corpus'));
    for (const d of documents.slice(0, 4)) writeFileSync(join(work, 'corpus', d.file), d.text);
    const emb = TextEmbedder.load(join(work, 'emb'));
    const store = await openForIndexing(join(work, 'docs-store'), emb);
    await indexFiles(store, emb, [join(work, 'corpus')], { chunk: { maxTokens: 48, overlapTokens: 4 } });
    store.close();
    rx = await receiver(); // traces: a request that retrieves has a retrieval span
    server = await startServer({
      config: parseServeConfig({ tracing: { otlp_endpoint: rx.url, service_name: 'attn-rag-test' } }),
      models: [`emb=${join(work, 'emb')}`, { name: 'lm', model: tinyGPT(3, 1024), tokenizer: tinyTokenizer() }],
      port: 0,
      logger: silentLogger(),
      vectorStores: { stores: [`docs=${join(work, 'docs-store')}`], root: join(work, 'root') },
    });
    base = `${server.url}/v1`;
  });
  after(async () => {
    await server?.close();
    rx?.server.close();
    rmSync(work, { recursive: true, force: true });
  });

  it('lists and searches a store indexed with attn rag index', async () => {
    const list = await get('/vector_stores');
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.data.map((s: { id: string }) => s.id), ['docs']);
    assert.equal(list.json.data[0].file_counts.completed, 4);
    const r = await postJson(`${base}/vector_stores/docs/search`, { query: townName(1), max_num_results: 3, attn_mode: 'bm25' });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.object, 'vector_store.search_results.page');
    assert.ok(r.json.data.length >= 1 && r.json.data.length <= 3); // BM25 returns only chunks that share a word with the query
    assert.equal(r.json.data[0].filename, join(work, 'corpus', documents[1]!.file));
    const a = r.json.data[0].attributes;
    assert.match(a.chunk_id, /#\d+$/);
    assert.ok(a.end > a.start);
    assert.equal(r.json.data[0].content[0].type, 'text');
    const files = await get('/vector_stores/docs/files');
    assert.equal(files.json.data.length, 4);
  });

  it('creates a store, adds a file (re-adding it unchanged is skipped), and searches it in every mode', async () => {
    const c = await postJson(`${base}/vector_stores`, { name: 'notes' });
    assert.equal(c.status, 200, JSON.stringify(c.json));
    assert.match(c.json.id, /^vs_[0-9a-f]{24}$/);
    const id = c.json.id as string;
    const add = await postJson(`${base}/vector_stores/${id}/files`, { filename: 'town.md', content: documents[6]!.text });
    assert.equal(add.status, 200, JSON.stringify(add.json));
    assert.ok(add.json.attn_chunks >= 1);
    const again = await postJson(`${base}/vector_stores/${id}/files`, { filename: 'town.md', content: documents[6]!.text });
    assert.equal(again.json.attn_unchanged, true);
    await postJson(`${base}/vector_stores/${id}/files`, { filename: 'other.md', content: documents[7]!.text });
    for (const mode of ['bm25', 'dense', 'hybrid']) {
      const r = await postJson(`${base}/vector_stores/${id}/search`, { query: `${townName(6)} mayor`, attn_mode: mode });
      assert.equal(r.status, 200, `${mode}: ${JSON.stringify(r.json)}`);
      assert.ok(r.json.data.length >= 1, mode);
    }
    assert.equal((await get(`/vector_stores/${id}`)).json.file_counts.completed, 2);
  });

  it('answers bad requests with 4xx naming the problem', async () => {
    const missing = await postJson(`${base}/vector_stores/vs_nope/search`, { query: 'x' });
    assert.equal(missing.status, 404);
    assert.match(missing.json.error.message, /No vector store found with id 'vs_nope'/);
    assert.equal((await get('/vector_stores/vs_nope')).status, 404);
    const empty = await postJson(`${base}/vector_stores/docs/search`, { query: '  ' });
    assert.equal(empty.status, 400);
    assert.equal(empty.json.error.param, 'query');
    const mode = await postJson(`${base}/vector_stores/docs/search`, { query: 'x', attn_mode: 'fuzzy' });
    assert.equal(mode.status, 400);
    const noContent = await postJson(`${base}/vector_stores/docs/files`, { file_id: 'file-abc' });
    assert.equal(noContent.status, 400);
    assert.match(noContent.json.error.message, /filename/);
    const chat = await postJson(`${base}/chat/completions`, { model: 'lm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 2, attn_retrieval: { vector_store_id: 'gone' } });
    assert.equal(chat.status, 404);
    const embedder = await postJson(`${base}/vector_stores`, { name: 'x', attn_embedder: 'lm' });
    assert.equal(embedder.status, 400);
    assert.equal(embedder.json.error.param, 'attn_embedder', 'the error names the request\'s field');
    assert.match(embedder.json.error.message, /^Invalid 'attn_embedder': lm is not a served sentence embedder \(served: emb\)/);
  });

  it('chat completions retrieve from a named store, return their sources, and are timed and charged', async () => {
    const r = await postJson(`${base}/chat/completions`, {
      model: 'lm', max_tokens: 4, temperature: 0,
      messages: [{ role: 'user', content: `Who is the mayor of ${townName(2)}?` }],
      attn_retrieval: { vector_store_id: 'docs', k: 3, mode: 'hybrid' },
    });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const sources = r.json.attn_sources as Array<{ n: number; id: string; source: string; start: number; end: number }>;
    assert.ok(sources.length >= 1 && sources.length <= 3);
    assert.deepEqual(sources.map((s) => s.n), sources.map((_, i) => i + 1));
    assert.ok(sources.some((s) => s.source.endsWith(documents[2]!.file)), 'the town\'s own document is among the sources');
    assert.deepEqual(JSON.parse(r.headers.get('x-attn-sources')!).map((s: { id: string }) => s.id), sources.map((s) => s.id));
    // The prompt grew by the passages: more prompt tokens than the question alone.
    assert.ok(r.json.usage.prompt_tokens > 200, `prompt tokens ${r.json.usage.prompt_tokens}`);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /attn_retrieval_seconds_count\{store="docs",mode="hybrid"\} [1-9]/);
    assert.match(metrics, /attn_retrieval_seconds_count\{store="docs",mode="bm25"\} [1-9]/);
    const ledger = (await get('/ledger')).json;
    assert.ok(JSON.stringify(ledger).includes('"emb"'), 'retrieval is charged to the embedder in the ledger');
    // The trace: a `retrieval` span under the request's span, naming the store, the mode and the sources used.
    const traceId = r.headers.get('traceparent')!.split('-')[1]!;
    await until(() => rx.spans.some((s) => s.traceId === traceId && s.name === 'retrieval'), 10_000, 'the retrieval span to be exported');
    const root = rx.spans.find((s) => s.traceId === traceId && s.name === 'attn chat')!;
    const span = rx.spans.find((s) => s.traceId === traceId && s.name === 'retrieval')!;
    assert.ok(root, `a request span among ${rx.spans.map((s) => s.name).join(', ')}`);
    assert.equal(span.parentSpanId, root.spanId);
    assert.equal(attr(span, 'attn.retrieval.vector_store_id'), 'docs');
    assert.equal(attr(span, 'attn.retrieval.mode'), 'hybrid');
    assert.equal(Number(attr(span, 'attn.retrieval.k')), 3);
    assert.equal(Number(attr(span, 'attn.retrieval.sources_used')), sources.length);
    assert.ok(Number(attr(span, 'attn.retrieval.query_tokens')) > 0);
    const ids = (attr(span, 'attn.retrieval.source_ids') as { values: Array<{ stringValue: string }> }).values.map((v) => v.stringValue);
    assert.deepEqual(ids, sources.map((s) => s.id));
    assert.ok(BigInt(span.endTimeUnixNano) >= BigInt(span.startTimeUnixNano));
    // A request that does not retrieve has no retrieval span.
    const plain = await postJson(`${base}/chat/completions`, { model: 'lm', max_tokens: 2, messages: [{ role: 'user', content: 'hi' }] });
    const plainTrace = plain.headers.get('traceparent')!.split('-')[1]!;
    await until(() => rx.spans.some((s) => s.traceId === plainTrace && s.name === 'decode'), 10_000, 'the plain request\'s spans');
    assert.ok(!rx.spans.some((s) => s.traceId === plainTrace && s.name === 'retrieval'));
  });
});
