import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import type { PagedKVStats } from '../src/generate/paged_kv/paged_kv.js';
import { Scheduler, type SchedulerOptions } from '../src/serve/scheduler.js';
import { Sequence, type FinishReason, type SequenceParams } from '../src/serve/sequence.js';
import { Rng } from '../src/util/rng.js';
import { postJson, startTiny, tinyGPT } from './serve_fixture.js';

const addon = loadAddon();
if (addon) registerBackend(createNativeBackend(addon));
after(() => setBackend('js'));

interface Run {
  ids: number[];
  reason: Promise<FinishReason>;
}

function submit(s: Scheduler, prompt: number[], params: SequenceParams): Run {
  const ids: number[] = [];
  let done!: (r: FinishReason) => void;
  const reason = new Promise<FinishReason>((r) => (done = r));
  s.submit(new Sequence(prompt, params, { onToken: (id) => ids.push(id), onFinish: (r) => done(r) }));
  return { ids, reason };
}

/** Every prompt through a scheduler at once; each request's ids and finish reason. */
async function serveAll(opts: SchedulerOptions, prompts: number[][], maxTokens: number, seeBlocks?: (s: Scheduler) => void): Promise<{ ids: number[][]; reasons: FinishReason[]; scheduler: Scheduler }> {
  const scheduler = new Scheduler(tinyGPT(3, 128), opts, seeBlocks ? { onStep: () => seeBlocks(scheduler) } : {});
  const runs = prompts.map((p, i) => submit(scheduler, p, { maxTokens, seed: i, temperature: 0 }));
  const reasons = await Promise.all(runs.map((r) => r.reason));
  await scheduler.drain(); // the last step's sequences give their blocks back
  return { ids: runs.map((r) => r.ids), reasons, scheduler };
}

describe('serving from a paged KV cache', () => {
  setBackend(addon ? 'native' : 'js');
  const rng = new Rng(31);
  const system = Array.from({ length: 40 }, () => rng.int(96));
  const shared = Array.from({ length: 12 }, (_, i) => [...system, ...Array.from({ length: 1 + (i % 5) }, () => rng.int(96))]);

  it('requests sharing a system prompt share its blocks (prefilled once) and get the contiguous caches\' tokens', async () => {
    const want = await serveAll({ maxBatch: 16, maxQueue: 64 }, shared, 10);
    let peakShared = 0;
    const got = await serveAll({ maxBatch: 16, maxQueue: 64, kvPool: { blockTokens: 8, blocks: 200 } }, shared, 10, (s) => {
      peakShared = Math.max(peakShared, s.paged!.stats().shared);
    });
    assert.deepEqual(got.ids, want.ids);
    const kv = got.scheduler.paged!.stats();
    assert.equal(kv.prefixHits, 11, 'every request after the first found the system prompt cached');
    assert.equal(kv.prefixHitTokens, 11 * 40, 'its 5 full blocks of 8 tokens each time');
    assert.ok(peakShared >= 5, `the system prompt's blocks were held by several sequences at once (peak ${peakShared})`);
    // Without sharing each request would hold its own 40-token prefix: 12 × 7 blocks at the peak, not 5 + 12 × 2.
    assert.ok(kv.peakUsed <= 5 + 12 * 2, `peak ${kv.peakUsed} blocks`);
    assert.equal(kv.used, kv.cached, 'after the requests end only the prefix cache holds blocks');
  });

  it('a pool smaller than the tokens in flight makes requests wait (or recompute) instead of failing, with the same tokens', async () => {
    const prompts = Array.from({ length: 10 }, (_, i) => Array.from({ length: 20 + i }, () => rng.int(96)));
    const want = await serveAll({ maxBatch: 10, maxQueue: 64 }, prompts, 24);
    // 12 blocks of 8 = 96 tokens: two requests at their longest (≤ 53 tokens) fit, ten do not.
    const got = await serveAll({ maxBatch: 10, maxQueue: 64, kvPool: { blockTokens: 8, blocks: 12, prefixSharing: false } }, prompts, 24);
    assert.deepEqual(got.reasons, prompts.map(() => 'length'));
    assert.deepEqual(got.ids, want.ids);
    assert.ok(got.scheduler.preemptions > 0, 'sequences that outgrew the pool went back to the queue and were recomputed');
    assert.equal(got.scheduler.paged!.stats().used, 0, 'every block went back');
  });

  it('the pool\'s reported state is refreshed once finished sequences give their blocks back (an idle server holds none)', async () => {
    let last: PagedKVStats | null = null;
    const scheduler = new Scheduler(tinyGPT(3, 128), { maxBatch: 4, maxQueue: 16, kvPool: { blockTokens: 4, blocks: 32 } }, { onKvPool: (kv) => (last = kv) });
    const runs = shared.slice(0, 3).map((p, i) => submit(scheduler, p, { maxTokens: 6, seed: i, temperature: 0 }));
    await Promise.all(runs.map((r) => r.reason));
    await scheduler.drain();
    const now = scheduler.paged!.stats();
    assert.ok(now.used > 0 && now.used === now.cached, 'only the prefix cache holds blocks');
    assert.deepEqual(last, now, 'the last report is the pool as it stands, not as the last step left it');
  });

  it('a pool too small for one request answers 400 naming the limit; /metrics shows the pool', async () => {
    const server = await startTiny({ limits: { maxBodyBytes: 1 << 20, defaultMaxTokens: 16, maxTokensCap: 4096, maxBatch: 4, maxQueue: 16, requestTimeoutMs: 30_000, kvBlockTokens: 4, kvPoolBlocks: 6 } });
    try {
      const big = await postJson(`${server.url}/v1/completions`, { model: 'tiny', prompt: 'Hello there', max_tokens: 40, temperature: 0 });
      assert.equal(big.status, 400);
      assert.equal(big.json.error.code, 'kv_pool_too_small');
      assert.match(big.json.error.message, /needs up to 13 KV cache blocks .* 6 blocks of 4 tokens \(24 tokens\)/);
      const ok = await postJson(`${server.url}/v1/completions`, { model: 'tiny', prompt: 'Hello there', max_tokens: 5, temperature: 0 });
      assert.equal(ok.status, 200, JSON.stringify(ok.json));
      const again = await postJson(`${server.url}/v1/completions`, { model: 'tiny', prompt: 'Hello there', max_tokens: 5, temperature: 0 });
      assert.equal(again.json.choices[0].text, ok.json.choices[0].text);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      assert.match(metrics, /attn_kv_blocks\{model="tiny",state="free"\} \d+/);
      assert.match(metrics, /attn_kv_blocks\{model="tiny",state="cached"\} [1-9]/);
      const gauge = (state: string) => Number(new RegExp(`attn_kv_blocks\\{model="tiny",state="${state}"\\} (\\d+)`).exec(metrics)![1]);
      assert.equal(gauge('used'), gauge('cached'), 'idle: no sequence holds blocks, only the prefix cache');
      assert.equal(gauge('used') + gauge('free'), 6);
      assert.match(metrics, /attn_kv_prefix_hits\{model="tiny"\} 1/);
      // Two full blocks and two slots of the third (the finished request listed its blocks with its output); the last prompt token re-runs.
      assert.match(metrics, /attn_kv_prefix_hit_tokens\{model="tiny"\} 10/);
    } finally {
      await server.close();
    }
  });
});
