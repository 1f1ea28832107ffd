import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { saveEmbedder } from '../src/io/embedder_dir.js';
import { embedTexts } from '../src/models/embed_texts.js';
import { Embedder } from '../src/models/embedder.js';
import { parseEmbedderConfig } from '../src/models/embedder_config.js';
import { startServer, type AttnServer } from '../src/serve/server.js';
import { WordTokenizer } from '../src/tokenizers/word.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';
import { postJson, silentLogger, tinyModelDir } from './serve_fixture.js';

describe('attn serve with a sentence embedder beside a language model', () => {
  const work = mkdtempSync(join(tmpdir(), 'attn-serve-emb-'));
  const tok = WordTokenizer.fromText('the red fox jumps over the lazy dog and a grey cat sleeps', 64);
  const model = new Embedder(parseEmbedderConfig({ vocab_size: tok.vocabSize, d_model: 16, n_layer: 1, n_head: 2, matryoshka_dims: [4, 8] }), new Rng(1)).eval();
  const lm = tinyModelDir('lm');
  let server: AttnServer;
  let client: OpenAI;

  before(async () => {
    saveEmbedder(join(work, 'emb'), model, tok);
    server = await startServer({ models: [`emb=${join(work, 'emb')}`, `lm=${lm.dir}`], port: 0, logger: silentLogger() });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(async () => {
    await server?.close();
    lm.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  it('serves the embedder on /v1/embeddings, `dimensions` picking a Matryoshka prefix', async () => {
    const texts = ['the red fox', 'a grey cat sleeps'];
    for (const dimensions of [undefined, 8, 4]) {
      const r = await client.embeddings.create({ model: 'emb', input: texts, ...(dimensions ? { dimensions } : {}) });
      const want = embedTexts(model, tok, texts, dimensions ?? 16);
      assert.equal(r.data.length, 2);
      r.data.forEach((d, i) => assertClose(d.embedding, want[i]!, 1e-6, `dim ${dimensions} text ${i}`));
      assert.ok(r.usage.prompt_tokens > 0);
    }
  });

  it('lists it, refuses completions and token-id input with a 400 naming the field', async () => {
    const models = (await client.models.list()).data.map((m) => m.id);
    assert.deepEqual(models.sort(), ['auto', 'emb', 'lm']); // auto routes over the language models only
    await assert.rejects(client.completions.create({ model: 'emb', prompt: 'hi', max_tokens: 2 }), (e: { status?: number; message?: string }) => e.status === 400 && /embedder/.test(e.message ?? ''));
    await assert.rejects(client.embeddings.create({ model: 'emb', input: [1, 2, 3] }), (e: { status?: number }) => e.status === 400);
    await assert.rejects(client.embeddings.create({ model: 'emb', input: 'the fox', dimensions: 99 }), (e: { status?: number; message?: string }) => e.status === 400 && /dimensions/.test(e.message ?? ''));
    const c = await client.completions.create({ model: 'lm', prompt: 'ab', max_tokens: 3, temperature: 0 });
    assert.equal(c.usage?.completion_tokens, 3);
  });

  it('attn serve without --config starts beside a language model and alone, "auto" routing over language models only (docs/rag.md §7)', async () => {
    const serve = async (models: string[], check: (url: string) => Promise<void>) => {
      const child = spawn(process.execPath, ['dist/src/cli/main.js', 'serve', ...models.flatMap((m) => ['--model', m]), '--port', '0', '--log-level', 'silent', '--backend', 'js'], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stderr!.on('data', (d) => (stderr += d));
      const exited = new Promise<number | null>((ok) => child.once('exit', ok));
      const line = await Promise.race([new Promise<string>((ok) => createInterface({ input: child.stdout! }).once('line', ok)), exited.then((code) => `exited ${code}: ${stderr}`)]);
      try {
        const url = /(http:\/\/\S+)\/v1/.exec(line)?.[1];
        assert.ok(url, line);
        await check(url);
      } finally {
        child.kill('SIGTERM');
        await exited;
      }
    };
    await serve([`lm=${lm.dir}`, `emb=${join(work, 'emb')}`], async (url) => {
      const ids = ((await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> }).data.map((m) => m.id);
      assert.deepEqual(ids.sort(), ['auto', 'emb', 'lm']);
      const auto = await postJson(`${url}/v1/completions`, { model: 'auto', prompt: 'ab', max_tokens: 2, temperature: 0 });
      assert.equal(auto.json.model, 'lm');
    });
    await serve([`emb=${join(work, 'emb')}`], async (url) => {
      const ids = ((await (await fetch(`${url}/v1/models`)).json()) as { data: Array<{ id: string }> }).data.map((m) => m.id);
      assert.deepEqual(ids, ['emb']);
      const r = await postJson(`${url}/v1/embeddings`, { model: 'emb', input: 'the red fox' });
      assert.equal(r.status, 200);
      assert.equal(r.json.data[0].embedding.length, 16);
    });
  });

  it('keys the semantic cache when --embedder names it', async () => {
    const s2 = await startServer({ models: [`emb=${join(work, 'emb')}`, `lm=${lm.dir}`], port: 0, logger: silentLogger(), embedder: 'emb' });
    try {
      const ask = () =>
        fetch(`${s2.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'lm', prompt: 'the red fox', max_tokens: 4, temperature: 0 }) });
      const a = await ask();
      const b = await ask();
      assert.equal(a.headers.get('x-attn-cache'), 'miss');
      assert.equal(b.headers.get('x-attn-cache'), 'hit');
      assert.deepEqual((await b.json()).choices[0].text, (await a.json()).choices[0].text);
    } finally {
      await s2.close();
    }
  });
});
