import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { forwardCached } from '../src/generate/cached_forward.js';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { batchForward, batchStep } from '../src/generate/batch_step.js';
import { generate } from '../src/generate/engine.js';
import { KVCache } from '../src/generate/kv_cache.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Scheduler } from '../src/serve/scheduler.js';
import { Sequence, type FinishReason, type SequenceParams } from '../src/serve/sequence.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';
import { tinyGPT, until } from './serve_fixture.js';

const addon = loadAddon();
const backends = addon ? ['js', 'native'] : ['js'];
if (addon) registerBackend(createNativeBackend(addon));
after(() => setBackend('js'));

interface Run {
  ids: number[];
  reason: Promise<FinishReason>;
  seq: Sequence;
}

function submit(s: Scheduler, prompt: number[], params: SequenceParams): Run {
  const ids: number[] = [];
  let done!: (r: FinishReason) => void;
  const reason = new Promise<FinishReason>((r) => (done = r));
  const seq = new Sequence(prompt, params, { onToken: (id) => ids.push(id), onFinish: (r) => done(r) });
  s.submit(seq);
  return { ids, reason, seq };
}

const randomPrompts = (n: number, vocab: number, seed = 5) => {
  const rng = new Rng(seed);
  return Array.from({ length: n }, (_, i) => Array.from({ length: 1 + ((i * 7) % 23) }, () => rng.int(vocab)));
};

for (const name of backends) {
  describe(`continuous batching (${name} backend)`, () => {
    it('batchStep gives each row the logits forwardCached gives it alone', () => {
      setBackend(name);
      const m = tinyGPT();
      const prompts = randomPrompts(5, 96);
      const solo = prompts.map(() => new KVCache(m.config, 1, 40));
      const batched = prompts.map(() => new KVCache(m.config, 1, 40));
      noGrad(() => prompts.forEach((p, b) => [solo[b]!, batched[b]!].forEach((c) => forwardCached(m, Int32Array.from(p), [1, p.length], c))));
      for (let step = 0; step < 3; step++) {
        const next = Int32Array.from(prompts, (_, b) => (b * 13 + step) % 96);
        const got = batchStep(m, next, batched);
        next.forEach((id, b) => {
          const want = noGrad(() => forwardCached(m, Int32Array.of(id), [1, 1], solo[b]!)).data;
          assertClose(got.subarray(b * 96, (b + 1) * 96), want, 2e-5, `step ${step} row ${b}`);
        });
      }
    });

    it('concurrent greedy requests that join and leave give the engine\'s single-request ids, token for token', async () => {
      setBackend(name);
      const m = tinyGPT();
      const prompts = randomPrompts(12, 96);
      const lengths = prompts.map((_, i) => 5 + ((i * 11) % 30));
      const want = prompts.map((p, i) => [...generate(m, p, { maxNewTokens: lengths[i]!, temperature: 0 })]);
      const s = new Scheduler(m, { maxBatch: 5, maxQueue: 100 });
      const sizes: number[] = [];
      const runs: Run[] = [];
      // Staggered arrivals: requests join a batch that is already decoding.
      for (const [i, p] of prompts.entries()) {
        runs.push(submit(s, p, { maxTokens: lengths[i]!, seed: 1, temperature: 0 }));
        await new Promise((r) => setImmediate(r));
        sizes.push(s.batchSize);
      }
      await Promise.all(runs.map((r) => r.reason));
      runs.forEach((r, i) => assert.deepEqual(r.ids, want[i], `request ${i}`));
      assert.ok(Math.max(...sizes) > 1, 'requests shared decode steps');
      assert.equal(s.batchSize, 0);
    });

    it('prompts joining a decode step fill each cache as a prefill alone does (ragged rows)', () => {
      setBackend(name);
      const m = tinyGPT();
      const prompts = randomPrompts(4, 96, 9).map((p) => Int32Array.from(p));
      // Sequence 0 is already decoding (one new token); the others join with their whole prompts.
      const solo = prompts.map((p) => new KVCache(m.config, 1, p.length + 3));
      const mixed = prompts.map((p) => new KVCache(m.config, 1, p.length + 3));
      noGrad(() => [solo[0]!, mixed[0]!].forEach((c) => forwardCached(m, prompts[0]!, [1, prompts[0]!.length], c)));
      const chunks = [Int32Array.of(5), ...prompts.slice(1)];
      const logits = batchForward(m, chunks, mixed);
      chunks.forEach((chunk, b) => {
        const want = noGrad(() => forwardCached(m, chunk, [1, chunk.length], solo[b]!)).data;
        assertClose(logits.subarray(b * 96, (b + 1) * 96), want, 2e-5, `sequence ${b} logits`);
        assert.equal(mixed[b]!.length, solo[b]!.length);
        const next = Int32Array.of(7);
        assertClose(batchStep(m, next, [mixed[b]!]), noGrad(() => forwardCached(m, next, [1, 1], solo[b]!)).data, 2e-5, `sequence ${b} next step`);
      });
    });

    it('requests arriving at once (prefilled in one step) give the engine\'s ids too', async () => {
      setBackend(name);
      const m = tinyGPT();
      const prompts = randomPrompts(10, 96, 11);
      const want = prompts.map((p) => [...generate(m, p, { maxNewTokens: 12, temperature: 0 })]);
      const s = new Scheduler(m, { maxBatch: 16, maxQueue: 16 });
      const runs = prompts.map((p) => submit(s, p, { maxTokens: 12, seed: 1, temperature: 0 }));
      await Promise.all(runs.map((r) => r.reason));
      runs.forEach((r, i) => assert.deepEqual(r.ids, want[i], `request ${i}`));
    });

    it('a seeded sampled request gives the same tokens alone and in company', async () => {
      setBackend(name);
      const m = tinyGPT();
      const params = { maxTokens: 20, seed: 42, temperature: 0.9, topK: 20, topP: 0.95 };
      const alone = submit(new Scheduler(m, { maxBatch: 8, maxQueue: 8 }), [1, 2, 3], params);
      await alone.reason;
      const s = new Scheduler(m, { maxBatch: 8, maxQueue: 8 });
      const others = [4, 5, 6].map((x) => submit(s, [x], { maxTokens: 30, seed: x, temperature: 1 }));
      const together = submit(s, [1, 2, 3], params);
      await Promise.all([together.reason, ...others.map((o) => o.reason)]);
      assert.deepEqual(together.ids, alone.ids);
      assert.equal(together.ids.length, 20);
    });
  });
}

describe('scheduler', () => {
  it('a finished sequence leaves the batch before the next step; the others go on', async () => {
    setBackend('js');
    const s = new Scheduler(tinyGPT(), { maxBatch: 8, maxQueue: 8 });
    const a = submit(s, [1, 2], { maxTokens: 50, seed: 1, temperature: 0 });
    const b = submit(s, [3], { maxTokens: 50, seed: 1, temperature: 0 });
    await until(() => a.ids.length >= 3 && s.batchSize === 2, 5000, 'two running sequences');
    a.seq.finish('cancelled');
    const at = a.ids.length;
    assert.equal(await a.reason, 'cancelled');
    await until(() => s.batchSize === 1, 5000, 'the cancelled sequence to leave');
    assert.equal(a.ids.length, at, 'no token after cancel');
    assert.equal(await b.reason, 'length');
    assert.equal(b.ids.length, 50);
  });

  it('stops at the context: finish_reason length with block_size − prompt + 1 tokens', async () => {
    const m = tinyGPT(3, 16);
    const s = new Scheduler(m, { maxBatch: 2, maxQueue: 2 });
    const r = submit(s, [1, 2, 3, 4, 5, 6], { maxTokens: 100, seed: 1, temperature: 0 });
    assert.equal(await r.reason, 'length');
    assert.equal(r.ids.length, 16 - 6 + 1);
    assert.deepEqual(r.ids, [...generate(m, [1, 2, 3, 4, 5, 6], { maxNewTokens: 11, temperature: 0 })]);
  });

  it('refuses beyond the queue bound with 429 and drains on close', async () => {
    const s = new Scheduler(tinyGPT(), { maxBatch: 1, maxQueue: 1 });
    const first = submit(s, [1], { maxTokens: 30, seed: 1, temperature: 0 });
    const second = submit(s, [2], { maxTokens: 5, seed: 1, temperature: 0 }); // waits: the queue holds one
    assert.throws(() => submit(s, [3], { maxTokens: 5, seed: 1, temperature: 0 }), (e: any) => e.status === 429 && e.headers['retry-after'] === '1');
    const drained = s.drain();
    assert.throws(() => submit(s, [4], { maxTokens: 5, seed: 1, temperature: 0 }), (e: any) => e.status === 503);
    await drained;
    assert.equal(await first.reason, 'length');
    assert.equal(await second.reason, 'length');
  });
});
