import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { attentionPaged } from '../src/backend/js/attention_paged.js';
import { KVBlockPool } from '../src/generate/paged_kv/block_pool.js';
import { copyStorage, readStorage, toBackend } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { moveToBackend } from '../src/nn/placement.js';
import { Scheduler, type SchedulerOptions } from '../src/serve/scheduler.js';
import { Sequence, type FinishReason } from '../src/serve/sequence.js';
import { postJson, startTiny, tinyGPT } from './serve_fixture.js';
import { assertNear, webgpu, webgpuSkip } from './webgpu_helpers.js';

/*
 * The paged KV cache on webgpu: the attentionPaged kernel
 * (kernels/attention_paged.ts) against js's, the block pool's device copy on
 * write, and `attn serve` on webgpu paging its cache — the same answers as
 * js's server, prompts sharing a prefix reusing its blocks. SwiftShader
 * without a GPU; skips as webgpu_helpers.ts says.
 */

const skip = await webgpuSkip('WebGPU paged KV tests');
after(() => setBackend('js'));

const shape = { n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, block_size: 256 };

describe('paged KV cache on webgpu', { skip }, () => {
  it('attentionPaged: grouped KV heads, shuffled blocks, a prefill, a decode step and a verify together, with and without fresh keys and values, as js', async () => {
    const rng = new Rng(5);
    const [nHead, nKvHead, headDim, blockTokens, blocks] = [4, 2, 8, 4, 32];
    const width = nKvHead * headDim;
    const kPool = Float32Array.from({ length: blocks * blockTokens * width }, () => rng.normal());
    const vPool = Float32Array.from({ length: kPool.length }, () => rng.normal());
    const d = { nHead, nKvHead, headDim, scale: 1 / Math.sqrt(headDim), blockTokens };
    const order = Array.from({ length: blocks }, (_, i) => i).sort(() => rng.random() - 0.5);
    const seqs = [{ past: 0, Tq: 7, table: order.slice(0, 2) }, { past: 12, Tq: 1, table: order.slice(2, 6) }, { past: 5, Tq: 3, table: order.slice(6, 8) }, { past: 40, Tq: 1, table: order.slice(8, 19) }];
    let offset = 0;
    const paged = seqs.map((s) => ({ ...s, offset: (offset += s.Tq) - s.Tq }));
    const q = Float32Array.from({ length: offset * nHead * headDim }, () => rng.normal());
    const fresh = { k: Float32Array.from({ length: offset * width }, () => rng.normal()), v: Float32Array.from({ length: offset * width }, () => rng.normal()) };
    // Without fresh keys (the slots already written), and with them (the call stores each new row's first).
    const want = new Float32Array(q.length);
    attentionPaged(q, want, kPool, vPool, paged, d);
    const [kAfter, vAfter] = [Float32Array.from(kPool), Float32Array.from(vPool)];
    const wantFresh = new Float32Array(q.length);
    attentionPaged(q, wantFresh, kAfter, vAfter, paged, d, fresh);
    assert.ok(wantFresh.some((x, i) => Math.abs(x - want[i]!) > 1e-3), 'the fresh rows change the answer');
    const be = await webgpu();
    try {
      const dev = be.device!;
      const out = dev.alloc(q.length, true);
      const [kDev, vDev] = [dev.upload(kPool), dev.upload(vPool)];
      be.attentionPaged(dev.upload(q), out, kDev, vDev, paged, d);
      assertNear(await dev.read(out), want, 1e-5, 1e-5, 'attentionPaged');
      be.attentionPaged(dev.upload(q), out, kDev, vDev, paged, d, { k: dev.upload(fresh.k), v: dev.upload(fresh.v) });
      assertNear(await dev.read(out), wantFresh, 1e-5, 1e-5, 'attentionPaged with fresh keys and values');
      assert.deepEqual(await dev.read(kDev), kAfter, 'the new keys stored in their slots');
      assert.deepEqual(await dev.read(vDev), vAfter, 'the new values stored in their slots');
    } finally {
      setBackend('js');
    }
  });

  it('the block pool lives on the device; a copy on write copies the block\'s first slots of every layer, through a temporary', async () => {
    await webgpu();
    try {
      const pool = new KVBlockPool(shape, 4, 8);
      const rng = new Rng(9);
      const host = [...pool.k, ...pool.v].map(() => Float32Array.from({ length: 8 * 4 * pool.width }, () => rng.normal()));
      [...pool.k, ...pool.v].forEach((a, i) => {
        assert.ok(!(a instanceof Float32Array), 'device storage');
        copyStorage(toBackend(host[i]!), 0, a, 0, host[i]!.length);
      });
      pool.copy(2, 5, 3);
      for (const [i, a] of [...pool.k, ...pool.v].entries()) {
        const got = await readStorage(a);
        const want = Float32Array.from(host[i]!);
        want.copyWithin(pool.offset(5, 0), pool.offset(2, 0), pool.offset(2, 3));
        assert.deepEqual(got, want, `array ${i}`);
      }
    } finally {
      setBackend('js');
    }
  });

  it('a pool smaller than the tokens in flight on webgpu: requests wait or are recomputed (preempted), with js\'s tokens; every block comes back', async () => {
    const rng = new Rng(31);
    const prompts = Array.from({ length: 10 }, (_, i) => Array.from({ length: 20 + i }, () => rng.int(96)));
    const serveAll = async (opts: SchedulerOptions) => {
      const model = tinyGPT(3, 128);
      moveToBackend(model);
      const scheduler = new Scheduler(model, opts);
      const runs = prompts.map((p, i) => {
        const ids: number[] = [];
        const reason = new Promise<FinishReason>((done) => scheduler.submit(new Sequence(p, { maxTokens: 24, seed: i, temperature: 0 }, { onToken: (id) => ids.push(id), onFinish: done })));
        return { ids, reason };
      });
      const reasons = await Promise.all(runs.map((r) => r.reason));
      await scheduler.drain();
      return { ids: runs.map((r) => r.ids), reasons, scheduler };
    };
    setBackend('js');
    const want = await serveAll({ maxBatch: 10, maxQueue: 64 });
    await webgpu();
    try {
      // 12 blocks of 8 = 96 tokens: two requests at their longest (≤ 53 tokens) fit, ten do not.
      const got = await serveAll({ maxBatch: 10, maxQueue: 64, kvPool: { blockTokens: 8, blocks: 12, prefixSharing: false } });
      assert.deepEqual(got.reasons, prompts.map(() => 'length'));
      assert.deepEqual(got.ids, want.ids);
      assert.ok(got.scheduler.preemptions > 0, 'sequences that outgrew the pool went back to the queue and were recomputed');
      assert.equal(got.scheduler.paged!.stats().used, 0, 'every block went back');
    } finally {
      setBackend('js');
    }
  });

  it('attn serve on webgpu pages its KV cache: answers as js, a shared prefix reused from the pool', async () => {
    const system = 'You are a helpful assistant who answers briefly and politely. ';
    const prompts = [`${system}Hello`, `${system}The cat`, `${system}abc`, 'Zz'];
    const ask = async (url: string) => {
      const texts: string[] = [];
      // One at a time first (the first prompt's blocks are then listed), then the rest together.
      texts.push((await postJson(`${url}/v1/completions`, { model: 'tiny', prompt: prompts[0], max_tokens: 12, temperature: 0 })).json.choices[0].text);
      const rest = await Promise.all(prompts.slice(1).map((p) => postJson(`${url}/v1/completions`, { model: 'tiny', prompt: p, max_tokens: 12, temperature: 0 })));
      for (const r of rest) {
        assert.equal(r.status, 200, JSON.stringify(r.json));
        texts.push(r.json.choices[0].text);
      }
      const metrics = await (await fetch(`${url}/metrics`)).text();
      return { texts, hits: Number(/^attn_kv_prefix_hit_tokens\{model="tiny"\} (\S+)$/m.exec(metrics)?.[1]) };
    };
    setBackend('js');
    const jsServer = await startTiny({ cache: null, blockSize: 128, limits: { kvBlockTokens: 8 } });
    const want = await ask(jsServer.url).finally(() => jsServer.close());
    await webgpu();
    const server = await startTiny({ cache: null, blockSize: 128, limits: { kvBlockTokens: 8 } });
    try {
      const got = await ask(server.url);
      assert.deepEqual(got.texts, want.texts);
      // (How many depends on which requests share a step, as on js: each server must reuse the shared prompt's blocks.)
      assert.ok(got.hits > 0 && want.hits > 0, `prefix tokens reused: ${got.hits} on webgpu, ${want.hits} on js`);
    } finally {
      await server.close();
      setBackend('js');
    }
  });
});
