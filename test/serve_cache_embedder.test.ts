import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { splitPairs } from '../src/data/positive_pairs.js';
import { templatePairs } from '../src/data/template_pairs.js';
import { writeDirAtomic } from '../src/io/atomic.js';
import { saveEmbedder } from '../src/io/embedder_dir.js';
import { modelFiles } from '../src/io/model_dir.js';
import { lookupCache } from '../src/serve/cache_lookup.js';
import { completionJob } from '../src/serve/completion_job.js';
import { meanPooledEmbedding } from '../src/serve/pooled_embedding.js';
import { newTraceContext } from '../src/serve/logging.js';
import { RequestState } from '../src/serve/request_state.js';
import { CompletionRequestSchema } from '../src/serve/request_schemas.js';
import { startServer } from '../src/serve/server.js';
import { validate } from '../src/serve/validation.js';
import { parseEmbedderOptions } from '../src/train/embedder_options.js';
import { trainEmbedder } from '../src/train/embedder_trainer.js';
import { UserError } from '../src/util/errors.js';
import { parseServeConfig } from '../src/serve/config.js';
import { postJson, silentLogger, startTiny, tinyGPT, tinyTokenizer } from './serve_fixture.js';

/**
 * The semantic cache once served "Write a haiku about rain." the answer to
 * "What is the capital of France?": a GPT's mean-pooled hidden states put
 * every prompt near every other. A served sentence embedder keys it by
 * default now, the GPT fallback needs cache.allow_gpt_embeddings, and the
 * embedding runs in the scheduler, between decode steps.
 */

before(() => setBackend('js'));

// Two prompts of different meaning, and a paraphrase of the first, in the embedder's vocabulary.
const RABBITS = 'in the evening three hungry golden rabbits bite 5 idle green bears in the meadow';
const PARAPHRASE = 'at dusk 3 hungry golden rabbits bite 5 idle green bears in the field';
const WOLF = 'during the winter five small blue bunnies rouse a lazy orange wolf near the river';

describe('semantic cache: a trained sentence embedder keys it by default', () => {
  const work = mkdtempSync(join(tmpdir(), 'attn-cache-emb-'));
  const gpt = tinyGPT(3, 128); // room for the prompts, one character a token
  after(() => rmSync(work, { recursive: true, force: true }));

  it('unrelated prompts miss (the requesting GPT would have matched them); the same and a paraphrase hit', async () => {
    // The embedder test's small training run: 30 steps on generated paraphrase pairs.
    const { train, heldOut } = splitPairs(templatePairs(1200, 2));
    const options = parseEmbedderOptions({ dModel: 16, layers: 1, heads: 2, matryoshka: [4, 8], batchSize: 16, steps: 30, lr: 3e-3, warmupSteps: 5, evalInterval: 30, evalPairs: 60 });
    const { model, tokenizer } = trainEmbedder({ train, heldOut, options });
    saveEmbedder(join(work, 'emb'), model, tokenizer);

    const threshold = 0.9;
    // The defect: the GPT's pooled states call the two unrelated prompts near-identical.
    writeDirAtomic(join(work, 'lm'), modelFiles(gpt, tinyTokenizer()));
    const pooled = (t: string) => meanPooledEmbedding(gpt, tinyTokenizer().encode(t));
    const gptSimilarity = pooled(RABBITS).reduce((s, x, i) => s + x * pooled(WOLF)[i]!, 0);
    assert.ok(gptSimilarity >= threshold, `the GPT fallback would have matched them (cosine ${gptSimilarity})`);

    const s = await startServer({ models: [`emb=${join(work, 'emb')}`, `lm=${join(work, 'lm')}`], port: 0, logger: silentLogger(), config: parseServeConfig({ cache: { threshold } }) });
    try {
      assert.equal(s.context.embedder?.name, 'emb', 'no --embedder: the served sentence embedder');
      const ask = (prompt: string) => postJson(`${s.url}/v1/completions`, { model: 'lm', prompt, max_tokens: 4, temperature: 0 });
      const first = await ask(RABBITS);
      assert.equal(first.status, 200, JSON.stringify(first.json));
      assert.equal(first.headers.get('x-attn-cache'), 'miss');
      const unrelated = await ask(WOLF);
      assert.equal(unrelated.headers.get('x-attn-cache'), 'miss', 'an unrelated prompt must not be served another\'s answer');
      assert.equal((await ask(RABBITS)).headers.get('x-attn-cache'), 'hit');
      const para = await ask(PARAPHRASE);
      assert.equal(para.headers.get('x-attn-cache'), 'hit', 'a paraphrase is the same question');
      assert.equal(para.json.choices[0].text, first.json.choices[0].text);
    } finally {
      await s.close();
    }
  });
});

describe('semantic cache: the GPT fallback only when asked', () => {
  it('with no sentence embedder the cache is off unless cache.allow_gpt_embeddings is set', async () => {
    const off = await startTiny();
    const on = await startTiny({ configInput: { cache: { allow_gpt_embeddings: true } } });
    try {
      assert.equal(off.context.cache, null);
      assert.notEqual(on.context.cache, null);
      assert.equal(on.context.embedder, null, 'each request\'s own model');
      const body = { model: 'tiny', prompt: 'Same question', max_tokens: 3, temperature: 0 };
      await postJson(`${off.url}/v1/completions`, body);
      assert.equal((await postJson(`${off.url}/v1/completions`, body)).headers.get('x-attn-cache'), 'miss');
    } finally {
      await off.close();
      await on.close();
    }
  });

  it('--embedder naming a language model is refused without the flag, in one line', async () => {
    await assert.rejects(startTiny({ embedder: 'tiny' }), (e: unknown) => e instanceof UserError && /--embedder tiny is a language model.*allow_gpt_embeddings/.test(e.message) && !e.message.includes('\n'));
    const s = await startTiny({ embedder: 'tiny', configInput: { cache: { allow_gpt_embeddings: true } } });
    await s.close();
  });
});

describe('semantic cache: embedding runs in the scheduler, between decode steps', () => {
  it('long prompts looked up together do not stall an open stream: it gets a token between each embedding', async () => {
    const s = await startTiny({ blockSize: 1024, limits: { maxBatch: 16 }, configInput: { cache: { allow_gpt_embeddings: true } } });
    const served = s.context.models.get('tiny')!;
    const controller = new AbortController();
    try {
      // An open stream, counting the tokens it receives.
      const res = await fetch(`${s.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', prompt: 'a', max_tokens: 900, temperature: 0.5, stream: true }), signal: controller.signal });
      let tokens = 0;
      const reader = res.body!.getReader();
      const reading = (async () => {
        const dec = new TextDecoder();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) return;
          tokens += (dec.decode(value).match(/^data: \{/gm) ?? []).length;
        }
      })().catch(() => undefined);
      while (tokens < 5) await new Promise((r) => setTimeout(r, 5));

      // Six long prompts arrive at once (as a burst of requests would): each is a forward pass over ~1000 tokens.
      const K = 6;
      const lookups = Array.from({ length: K }, (_, i) => {
        const job = completionJob(validate(CompletionRequestSchema, { model: 'tiny', prompt: `${i} ${'the rain falls on the roof '.repeat(37)}`, max_tokens: 1, temperature: 0 }));
        const st = new RequestState(`t${i}`, newTraceContext(), 'default', 'completions', silentLogger());
        return lookupCache(s.context, served, job, st);
      });
      const before = tokens;
      const t0 = performance.now();
      const results = await Promise.all(lookups);
      const took = performance.now() - t0;
      assert.ok(results.every((r) => r !== null && r.hit === null), 'each is looked up (and misses)');
      // Before, all six embedded in the handlers back to back while the stream waited; now a step runs between each.
      assert.ok(tokens - before >= K - 2, `the stream got ${tokens - before} tokens during ${K} embeddings (${took.toFixed(0)} ms)`);
      controller.abort();
      await reading;
    } finally {
      controller.abort();
      await s.close(100);
    }
  });
});
