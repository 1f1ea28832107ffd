/**
 * The semantic cache on a real redis-server. CI exports ATTN_TEST_REDIS_URL
 * and ATTN_REQUIRE_REDIS=1, so there a missing Redis fails; elsewhere these
 * tests skip unless a URL is given, e.g.
 *   redis-server --port 6391 --bind 127.0.0.1 --save '' --daemonize yes
 *   ATTN_TEST_REDIS_URL=redis://127.0.0.1:6391 node --test dist/test/serve_modules_redis.test.js
 */
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';

import type { CachedResponse } from '../src/serve/contracts.js';
import { RedisSemanticCache, createSemanticCache, parseServeConfig } from '../src/serve/seam_implementations.js';

const URL = process.env.ATTN_TEST_REDIS_URL;
const skip = URL ? false : 'ATTN_TEST_REDIS_URL is not set (start a redis-server and point it there to run the Redis cache tests)';
if (skip && process.env.ATTN_REQUIRE_REDIS === '1') throw new Error(`ATTN_REQUIRE_REDIS=1 but ${skip}`);

const answer = (text: string): CachedResponse => ({ text, finish_reason: 'stop', usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } });
const at = (deg: number, scale = 1) => new Float32Array([Math.cos((deg * Math.PI) / 180) * scale, Math.sin((deg * Math.PI) / 180) * scale, 0, 0]);

describe('Redis semantic cache', { skip }, () => {
  const opened: RedisSemanticCache[] = [];
  /** A cache in a namespace no other test (or earlier run) uses; cleaned up after. */
  function cache(opts: { maxEntries?: number; ttlSeconds?: number; namespace?: string } = {}): RedisSemanticCache {
    const c = new RedisSemanticCache({
      url: URL!,
      maxEntries: opts.maxEntries ?? 100,
      ttlSeconds: opts.ttlSeconds ?? 60,
      namespace: opts.namespace ?? `attn-test:${randomBytes(6).toString('hex')}`,
    });
    opened.push(c);
    return c;
  }

  after(async () => {
    for (const c of opened) {
      try {
        await c.clear();
      } finally {
        await c.close();
      }
    }
  });

  test('hit at or above the threshold, miss below, best match wins', async () => {
    const c = cache();
    await c.store('m', at(0, 3), answer('zero'));
    await c.store('m', at(60), answer('sixty'));
    const sim20 = Math.cos((20 * Math.PI) / 180);
    const hit = await c.lookup('m', at(20, 0.5), sim20 - 1e-6);
    assert.equal(hit?.response.text, 'zero');
    assert.ok(Math.abs(hit!.similarity - sim20) < 1e-6);
    assert.deepEqual(hit!.response, answer('zero'));
    assert.equal(await c.lookup('m', at(20), sim20 + 1e-4), null);
    assert.equal((await c.lookup('m', at(45), 0.5))?.response.text, 'sixty');
    assert.equal(await c.size(), 2);
  });

  test('entries are per model', async () => {
    const c = cache();
    await c.store('small', at(0), answer('small answer'));
    assert.equal(await c.lookup('big', at(0), 0.9), null);
    await c.store('big', at(0), answer('big answer'));
    assert.equal((await c.lookup('small', at(0), 0.9))?.response.text, 'small answer');
    assert.equal((await c.lookup('big', at(0), 0.9))?.response.text, 'big answer');
  });

  test('entries expire after the TTL', async () => {
    const c = cache({ ttlSeconds: 0.15 });
    await c.store('m', at(0), answer('a'));
    assert.ok(await c.lookup('m', at(0), 0.9));
    await sleep(250);
    assert.equal(await c.lookup('m', at(0), 0.9), null);
    assert.equal(await c.size(), 0, 'the scan dropped the expired id from the indexes');
  });

  test('size bound: the least recently used entry is evicted', async () => {
    const c = cache({ maxEntries: 3 });
    for (const d of [0, 40, 80]) {
      await c.store('m', at(d), answer(String(d)));
      await sleep(3); // distinct millisecond scores
    }
    assert.ok(await c.lookup('m', at(0), 0.999)); // 0 becomes the most recently used
    await sleep(3);
    await c.store('m', at(120), answer('120'));
    assert.equal(await c.size(), 3);
    assert.equal(await c.lookup('m', at(40), 0.999), null, '40 was least recently used');
    for (const d of [0, 80, 120]) assert.equal((await c.lookup('m', at(d), 0.999))?.response.text, String(d));
  });

  test('an entry stored by one server is found by another (shared cache)', async () => {
    const namespace = `attn-test:${randomBytes(6).toString('hex')}`;
    const a = cache({ namespace });
    const settings = parseServeConfig({ cache: { url: URL, namespace } }).cache;
    const b = createSemanticCache(settings);
    assert.ok(b instanceof RedisSemanticCache);
    opened.push(b);
    await a.store('m', at(0), answer('from a'));
    const hit = await b.lookup('m', at(1), 0.99);
    assert.equal(hit?.response.text, 'from a');
    assert.equal(await b.size(), 1);
    // Namespaces separate deployments.
    assert.equal(await cache().lookup('m', at(0), 0.5), null);
  });

  test('a bad URL fails with one clear line', async () => {
    const c = new RedisSemanticCache({ url: 'redis://user:hunter2@127.0.0.1:1', maxEntries: 1, ttlSeconds: 1, namespace: 'x' });
    try {
      await assert.rejects(c.ready(), (e: Error) => /^cannot connect to the semantic cache at redis:\/\/user:\*\*\*@127\.0\.0\.1:1/.test(e.message) && !e.message.includes('hunter2'));
    } finally {
      await c.close();
    }
  });
});
