import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { setBackend } from '../src/backend/index.js';
import { batchForward } from '../src/generate/batch_step.js';
import { forwardCached } from '../src/generate/cached_forward.js';
import { generate } from '../src/generate/engine.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { loadAdapter, readAdapter } from '../src/io/peft.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { LoRABank } from '../src/nn/lora_bank.js';
import { quantize } from '../src/nn/quantized_linear.js';
import type { AttnServer } from '../src/serve/server.js';
import { noGrad } from '../src/tensor/autograd.js';
import { UserError } from '../src/util/errors.js';
import { assertClose } from './helpers.js';
import { makeAdapter, silentLogger, startTiny, tinyGPT, tinyTokenizer } from './serve_fixture.js';
import { startServer } from '../src/serve/server.js';

/** The base with one adapter attached the training way (LoRALinear): the reference for served answers. */
function withAdapter(dir: string | null): GPT {
  const m = tinyGPT(3);
  if (dir) loadAdapter(m, dir);
  return m.eval();
}

const root = mkdtempSync(join(tmpdir(), 'attn-serve-lora-'));
const A1 = join(root, 'a1');
const A2 = join(root, 'a2');
makeAdapter(A1, 1, ['c_attn', 'c_fc']);
makeAdapter(A2, 2, ['c_attn', 'c_proj']);
after(() => rmSync(root, { recursive: true, force: true }));

describe('many LoRA adapters over one base, per row (nn/lora_bank.ts)', () => {
  it('batchForward with mixed adapters gives each row what its own adapted model gives alone (fp32 and int8 bases)', () => {
    setBackend('js');
    for (const int8 of [false, true]) {
      const served = tinyGPT(3);
      if (int8) quantize(served);
      const bank = LoRABank.of(served);
      const ids = [A1, A2].map((d, i) => bank.add(`a${i + 1}`, readAdapter(d, served).layers, 4, 2));
      assert.deepEqual(ids, [0, 1]);
      // fp32: the training path (LoRALinear) is the reference. int8: the same quantized base with only that adapter, alone.
      const refs = [null, A1, A2].map((d) => {
        if (!int8) return { m: withAdapter(d), adapter: -1 };
        const q = tinyGPT(3);
        quantize(q);
        if (d) LoRABank.of(q).add('only', readAdapter(d, q).layers, 4, 2);
        return { m: q, adapter: d ? 0 : -1 };
      });
      const prompts = [[5, 9, 3], [7], [1, 2, 3, 4, 5], [8, 8]];
      const which = [0, 1, 2, 1]; // base, a1, a2, a1
      const caches = prompts.map(() => new KVCache(served.config, 1, 16));
      const got = batchForward(served, prompts.map((p) => Int32Array.from(p)), caches, which.map((w) => w - 1));
      prompts.forEach((p, s) => {
        const ref = refs[which[s]!]!;
        const cache = new KVCache(ref.m.config, 1, 16);
        const run = () => noGrad(() => forwardCached(ref.m, Int32Array.from(p), [1, p.length], cache)).data;
        const want = ref.adapter >= 0 ? LoRABank.find(ref.m)!.run(new Int32Array(p.length).fill(ref.adapter), run) : run();
        const V = served.config.vocab_size;
        assertClose(got.subarray(s * V, (s + 1) * V), want, 2e-5, `int8 ${int8} row ${s}`);
      });
      // The adapters do change the model: rows 1 and 3 differ from the base on the same prompt.
      const base = batchForward(served, [Int32Array.of(7)], [new KVCache(served.config, 1, 16)]);
      assert.ok(base.some((v, i) => Math.abs(v - got[served.config.vocab_size + i]!) > 1e-3));
    }
  });
});

describe('attn serve --adapter: adapters chosen per request, mixed in one batch', () => {
  let server: AttnServer;
  let client: OpenAI;
  const tok = tinyTokenizer();
  const greedy = (dir: string | null, prompt: string, n: number) => tok.decode([...generate(withAdapter(dir), tok.encode(prompt), { maxNewTokens: n, temperature: 0 })]);

  before(async () => {
    setBackend('js');
    server = await startTiny({ names: ['base'], adapters: [`a1=${A1}`, `a2@base=${A2}`], cache: null });
    client = new OpenAI({ baseURL: `${server.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(() => server.close());

  it('/v1/models lists the adapters with their base as parent', async () => {
    const res = await fetch(`${server.url}/v1/models`);
    const body = (await res.json()) as { data: Array<{ id: string; parent?: string }> };
    assert.deepEqual(body.data.map((m) => [m.id, m.parent ?? null]), [['base', null], ['a1', 'base'], ['a2', 'base'], ['auto', null]]);
  });

  it('each adapter alone, and all of them at once in one batch, give the adapted model\'s greedy text', async () => {
    const prompts = ['Hello', 'The cat', 'abc', 'Zz'];
    const models = ['base', 'a1', 'a2'];
    const want = new Map<string, string>();
    for (const p of prompts) for (const [i, name] of models.entries()) want.set(`${name}|${p}`, greedy([null, A1, A2][i]!, p, 10));
    // The adapters change the answers (else this test could not fail).
    assert.ok(prompts.some((p) => want.get(`a1|${p}`) !== want.get(`base|${p}`)) && prompts.some((p) => want.get(`a2|${p}`) !== want.get(`a1|${p}`)));
    const ask = (model: string, prompt: string) => client.completions.create({ model, prompt, max_tokens: 10, temperature: 0 }).then((r) => r.choices[0]!.text);
    // Alone: one request at a time.
    for (const name of models) assert.equal(await ask(name, prompts[0]!), want.get(`${name}|${prompts[0]}`), `${name} alone`);
    // Together: 12 requests over three models decode side by side.
    let maxBatch = 0;
    const sched = server.context.models.get('base')!.scheduler;
    const timer = setInterval(() => (maxBatch = Math.max(maxBatch, sched.batchSize)), 1);
    const jobs = prompts.flatMap((p) => models.map(async (name) => [name, p, await ask(name, p)] as const));
    const results = await Promise.all(jobs);
    clearInterval(timer);
    for (const [name, p, text] of results) assert.equal(text, want.get(`${name}|${p}`), `${name} on ${JSON.stringify(p)} in the batch`);
    assert.ok(maxBatch > 1, `requests shared a batch (largest ${maxBatch})`);
    assert.equal(server.context.models.get('a1')!.scheduler, sched, 'adapters share the base\'s scheduler');
  });

  it('an adapter that does not fit its base, or an unknown base, is refused at start', async () => {
    const other = mkdtempSync(join(tmpdir(), 'attn-serve-lora-bad-'));
    try {
      const wide = new GPT(parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 16, block_size: 64, vocab_size: 96 }));
      await assert.rejects(startServer({ models: [{ name: 'base', model: wide, tokenizer: tok }], adapters: [`x=${A1}`], port: 0, logger: silentLogger() }), (e: Error) => e instanceof UserError && /lora_A.weight has shape \[4,32\] but this base needs \[4,16\]/.test(e.message));
      await assert.rejects(startServer({ models: [{ name: 'base', model: tinyGPT(3), tokenizer: tok }], adapters: [`x@nope=${A1}`], port: 0, logger: silentLogger() }), (e: Error) => e instanceof UserError && /"nope" is not a served language model/.test(e.message));
      await assert.rejects(startServer({ models: [{ name: 'base', model: tinyGPT(3), tokenizer: tok }], adapters: [`base=${A1}`], port: 0, logger: silentLogger() }), /a model named "base" is already served/);
      await assert.rejects(startServer({ models: [{ name: 'base', model: tinyGPT(3), tokenizer: tok }], adapters: [`x=${other}`], port: 0, logger: silentLogger() }), /has no adapter_config.json/);
    } finally {
      rmSync(other, { recursive: true, force: true });
    }
  });
});
