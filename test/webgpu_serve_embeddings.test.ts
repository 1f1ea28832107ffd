import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { selectBackendAsync } from '../src/backend/select.js';
import { saveEmbedder } from '../src/io/embedder_dir.js';
import { embedTexts } from '../src/models/embed_texts.js';
import { Embedder } from '../src/models/embedder.js';
import { parseEmbedderConfig } from '../src/models/embedder_config.js';
import { meanPooledEmbedding } from '../src/serve/pooled_embedding.js';
import { startServer } from '../src/serve/server.js';
import { WordTokenizer } from '../src/tokenizers/word.js';
import { Rng } from '../src/util/rng.js';
import { postJson, silentLogger, tinyGPT, tinyModelDir, tinyTokenizer } from './serve_fixture.js';
import { assertNear, webgpuSkip } from './webgpu_helpers.js';

/*
 * /v1/embeddings and the semantic cache on a webgpu server: a sentence
 * embedder served beside a language model is uploaded with it and runs on
 * the device, as does a language model's mean-pooled embedding; each reads
 * back only its vectors (or hidden states). Before, a webgpu server answered
 * /v1/embeddings with a 500. The vectors must equal js's (atol 1e-5), and a
 * repeated prompt must hit the cache. SwiftShader without a GPU; skips as
 * webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('WebGPU embeddings serving tests');
const work = mkdtempSync(join(tmpdir(), 'attn-webgpu-emb-'));
after(() => {
  setBackend('js');
  rmSync(work, { recursive: true, force: true });
});

describe('embeddings on a webgpu server', { skip }, () => {
  it('/v1/embeddings from a sentence embedder and from a language model equal js\'s; the semantic cache hits on the device', async () => {
    const tok = WordTokenizer.fromText('the red fox jumps over the lazy dog and a grey cat sleeps', 64);
    const embedder = new Embedder(parseEmbedderConfig({ vocab_size: tok.vocabSize, d_model: 16, n_layer: 1, n_head: 2, matryoshka_dims: [4, 8] }), new Rng(1)).eval();
    saveEmbedder(join(work, 'emb'), embedder, tok);
    const lm = tinyModelDir('lm');
    setBackend('js');
    const texts = ['the red fox', 'a grey cat sleeps over the dog'];
    const want = embedTexts(embedder, tok, texts, 8);
    const wantLm = meanPooledEmbedding(tinyGPT(3), tinyTokenizer().encode('hello there'));
    await selectBackendAsync('webgpu');
    const server = await startServer({ models: [`emb=${join(work, 'emb')}`, `lm=${lm.dir}`], port: 0, logger: silentLogger() });
    try {
      const r = await postJson(`${server.url}/v1/embeddings`, { model: 'emb', input: texts, dimensions: 8 });
      assert.equal(r.status, 200, JSON.stringify(r.json));
      r.json.data.forEach((d: { embedding: number[] }, i: number) => assertNear(d.embedding, want[i]!, 0, 1e-5, `embedder, text ${i}`));
      const l = await postJson(`${server.url}/v1/embeddings`, { model: 'lm', input: 'hello there' });
      assert.equal(l.status, 200, JSON.stringify(l.json));
      assertNear(l.json.data[0].embedding, wantLm, 0, 1e-5, 'language model, mean-pooled');
      // The semantic cache is keyed by the served embedder: the second identical greedy request is a hit.
      const ask = () => postJson(`${server.url}/v1/completions`, { model: 'lm', prompt: 'the lazy dog', max_tokens: 4, temperature: 0 });
      const first = await ask();
      const second = await ask();
      assert.equal(second.json.choices[0].text, first.json.choices[0].text);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      assert.match(metrics, /^attn_cache_hits_total\{model="lm"\} 1$/m);
    } finally {
      await server.close();
      setBackend('js');
      lm.cleanup();
    }
  });
});
