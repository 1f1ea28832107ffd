import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';

import { UserError } from '../src/util/errors.js';
import type { CachedResponse, RequestRecord } from '../src/serve/contracts.js';
import {
  MemorySemanticCache,
  cacheThreshold,
  checkConfigModels,
  checkResponse,
  createLedger,
  createLogger,
  createRouter,
  createSemanticCache,
  createServeMetrics,
  defaultServeConfig,
  formatReport,
  loadServeConfig,
  newTraceContext,
  parseServeConfig,
  parseTraceparent,
  requestLogFields,
  runTiers,
  OTHER_TASK,
} from '../src/serve/seam_implementations.js';

const usage = (p: number, c: number) => ({ prompt_tokens: p, completion_tokens: c, total_tokens: p + c });
const rec = (id: string, over: Partial<RequestRecord> = {}): RequestRecord => ({
  id,
  model: 'small',
  task: 'default',
  usage: usage(1000, 500),
  cached: false,
  escalations: 0,
  ...over,
});
const close = (a: number, b: number) => assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${a} ≠ ${b}`);

// ---------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------

describe('serve config', () => {
  const bad = (raw: unknown, pattern: RegExp) =>
    assert.throws(() => parseServeConfig(raw, 'serve.json'), (e: unknown) => e instanceof UserError && pattern.test(e.message) && !e.message.includes('\n'));

  test('defaults fill an empty file', () => {
    const c = parseServeConfig({});
    assert.deepEqual(c.prices, {});
    assert.deepEqual(c.default_price, { input_per_million: 0, output_per_million: 0 });
    assert.equal(c.cache.enabled, true);
    assert.equal(c.cache.threshold, 0.95);
    assert.equal(c.cache.url, undefined);
    assert.deepEqual(c.routing, { tiers: [], rules: [], escalate_on_failed_check: true });
  });

  test('errors name the bad key', () => {
    bad({ cache: { threshold: 1.5 } }, /^serve\.json: cache\.threshold: /);
    bad({ cache: { treshold: 0.9 } }, /^serve\.json: cache: .*'treshold'/);
    bad({ prices: { gpt2: { input_per_million: -1, output_per_million: 1 } } }, /prices\.gpt2\.input_per_million/);
    bad({ prices: { gpt2: { input_per_million: 1 } } }, /prices\.gpt2\.output_per_million: Required/);
    bad({ cache: { url: 'http://x' } }, /cache\.url: must be a redis:\/\//);
    bad({ cache: { task_thresholds: { code: 0 } } }, /cache\.task_thresholds\.code/);
    bad({ routing: { tiers: ['a', 'b'], rules: [{ task: 'x', start: 'c' }] } }, /routing\.rules\[0\]\.start: "c" is not one of routing\.tiers/);
    bad({ routing: { tiers: ['a', 'a'] } }, /routing\.tiers\[1\]: "a" is listed twice/);
    bad({ pricing: {} }, /\(top level\): .*'pricing'/);
    bad([], /\(top level\): Expected object/);
  });

  test('loadServeConfig reads a file and reports bad JSON and missing files in one line', () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-serve-config-'));
    try {
      const good = join(dir, 'serve.json');
      writeFileSync(good, JSON.stringify({ prices: { big: { input_per_million: 2, output_per_million: 8 } }, routing: { tiers: ['small', 'big'] } }));
      const c = loadServeConfig(good);
      assert.equal(c.prices.big!.output_per_million, 8);
      const broken = join(dir, 'broken.json');
      writeFileSync(broken, '{"prices": ');
      assert.throws(() => loadServeConfig(broken), (e: unknown) => e instanceof UserError && e.message.startsWith(`${broken}: invalid JSON`));
      assert.throws(() => loadServeConfig(join(dir, 'nope.json')), (e: unknown) => e instanceof UserError && /ENOENT/.test(e.message));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('defaultServeConfig routes over the served models, and checkConfigModels catches unknown tiers', () => {
    const c = defaultServeConfig(['small', 'big', 'small']);
    assert.deepEqual(c.routing.tiers, ['small', 'big']);
    checkConfigModels(c, ['small', 'big']);
    assert.throws(() => checkConfigModels(c, ['small']), /routing\.tiers\[1\]: "big" is not a served model/);
  });
});

// ---------------------------------------------------------------------------
// economics
// ---------------------------------------------------------------------------

describe('ledger', () => {
  const prices = { small: { input_per_million: 1, output_per_million: 2 }, big: { input_per_million: 10, output_per_million: 30 } };

  test('cost = prompt·input/1e6 + completion·output/1e6; unlisted models use the default price', () => {
    const l = createLedger(prices, { defaultPrice: { input_per_million: 100, output_per_million: 0 } });
    close(l.record(rec('a')), (1000 * 1 + 500 * 2) / 1e6);
    close(l.record(rec('b', { model: 'big', usage: usage(3, 7) })), (3 * 10 + 7 * 30) / 1e6);
    close(l.record(rec('c', { model: 'other', usage: usage(10, 10) })), (10 * 100) / 1e6);
    // "constructor" is not a price just because every object has one.
    close(l.record(rec('d', { model: 'constructor', usage: usage(10, 10) })), (10 * 100) / 1e6);
  });

  test('a cached response costs its prompt only', () => {
    const l = createLedger(prices);
    close(l.record(rec('a', { cached: true })), 1000 / 1e6);
    const m = l.report().by_model[0]!;
    assert.deepEqual([m.prompt_tokens, m.completion_tokens], [1000, 0]);
  });

  test('cost per successful task counts the failures\' cost too', () => {
    const l = createLedger(prices);
    // Four "extract" requests of 0.002 each: two succeed, one fails, one has no feedback yet.
    for (const id of ['e1', 'e2', 'e3', 'e4']) l.record(rec(id, { task: 'extract' }));
    // One "chat" request on the big model, no success.
    l.record(rec('c1', { task: 'chat', model: 'big', usage: usage(100, 100) }));
    assert.equal(l.feedback('e1', true), true);
    assert.equal(l.feedback('e2', false), true);
    assert.equal(l.feedback('e3', true), true);
    assert.equal(l.feedback('c1', false), true);
    assert.equal(l.feedback('nope', true), false);
    const r = l.report();
    const extract = r.by_task.find((t) => t.task === 'extract')!;
    assert.deepEqual([extract.requests, extract.successes, extract.failures], [4, 2, 1]);
    close(extract.cost, 4 * 0.002);
    close(extract.cost_per_request, 0.002);
    close(extract.cost_per_successful_task!, (4 * 0.002) / 2);
    const chat = r.by_task.find((t) => t.task === 'chat')!;
    assert.equal(chat.cost_per_successful_task, null);
    assert.equal(r.requests, 5);
    close(r.cost, 4 * 0.002 + 0.004);
    close(r.cost_per_successful_task!, (4 * 0.002 + 0.004) / 2);
    assert.deepEqual(r.by_model.map((m) => [m.model, m.requests]), [['big', 1], ['small', 4]]);
  });

  test('an escalated request pays for every tier it tried, and counts once for its task', () => {
    const l = createLedger(prices);
    const cost = l.record(rec('x', { model: 'big', usage: usage(3, 7), escalations: 1, escalated: [{ model: 'small', usage: usage(3, 5), cached: false }] }));
    close(cost, (3 * 1 + 5 * 2 + 3 * 10 + 7 * 30) / 1e6);
    close(l.costOf({ model: 'small', usage: usage(3, 5), cached: false }), (3 * 1 + 5 * 2) / 1e6);
    const r = l.report();
    assert.deepEqual(r.by_model.map((m) => [m.model, m.requests, m.prompt_tokens, m.completion_tokens]), [['big', 1, 3, 7], ['small', 1, 3, 5]]);
    assert.deepEqual([r.requests, r.by_task[0]!.requests], [1, 1]);
    close(r.cost, cost);
  });

  test('a second feedback for the same id replaces the first', () => {
    const l = createLedger(prices);
    l.record(rec('a'));
    l.feedback('a', false);
    l.feedback('a', true);
    l.feedback('a', true);
    const t = l.report().by_task[0]!;
    assert.deepEqual([t.successes, t.failures], [1, 0]);
  });

  test('bounded: old requests are forgotten for feedback but stay in the totals', () => {
    const l = createLedger(prices, { maxRecords: 3 });
    for (let i = 0; i < 10; i++) l.record(rec(`r${i}`));
    assert.equal(l.feedback('r6', true), false);
    assert.equal(l.feedback('r7', true), true);
    assert.equal(l.feedback('r9', true), true);
    const r = l.report();
    assert.equal(r.requests, 10);
    close(r.cost, 10 * 0.002);
    close(r.cost_per_successful_task!, (10 * 0.002) / 2);
  });

  test('task types beyond maxTasks are pooled', () => {
    const l = createLedger(prices, { maxTasks: 2 });
    for (const t of ['a', 'b', 'c', 'd', 'a']) l.record(rec(`id-${t}-${Math.random()}`, { task: t }));
    l.record(rec('last', { task: 'zzz' }));
    assert.equal(l.feedback('last', true), true);
    const r = l.report();
    assert.deepEqual(r.by_task.map((t) => [t.task, t.requests, t.successes]), [[OTHER_TASK, 3, 1], ['a', 2, 0], ['b', 1, 0]]);
  });

  test('formatReport prints tables with cost per success', () => {
    const l = createLedger(prices);
    l.record(rec('a', { task: 'extract' }));
    l.record(rec('b', { task: 'extract' }));
    l.feedback('a', true);
    const text = formatReport(l.report());
    assert.match(text, /^task\s+requests\s+successes\s+failures\s+cost\s+cost\/request\s+cost\/success$/m);
    assert.match(text, /^extract\s+2\s+1\s+0\s+0\.004000\s+0\.002000\s+0\.004000$/m);
    assert.match(text, /^small\s+2\s+2000\s+1000\s+0\.004000$/m);
    const empty = formatReport(createLedger({}).report());
    assert.match(empty, /^all\s+0\s+0\s+0\s+0\s+0\s+—$/m);
  });
});

// ---------------------------------------------------------------------------
// semantic cache (in memory; Redis in serve_modules_redis.test.ts)
// ---------------------------------------------------------------------------

const answer = (text: string): CachedResponse => ({ text, finish_reason: 'stop', usage: usage(3, 2) });
/** A unit vector at `deg` degrees from e1 in the (e1, e2) plane: cosine with e1 is cos(deg). */
const at = (deg: number, scale = 1) => new Float32Array([Math.cos((deg * Math.PI) / 180) * scale, Math.sin((deg * Math.PI) / 180) * scale, 0, 0]);

describe('memory semantic cache', () => {
  test('hit at or above the threshold, miss below; embeddings are normalized', async () => {
    const c = new MemorySemanticCache({ maxEntries: 10, ttlSeconds: 60 });
    await c.store('m', at(0, 5), answer('zero'));
    const sim20 = Math.cos((20 * Math.PI) / 180);
    const hit = await c.lookup('m', at(20, 0.1), sim20 - 1e-6);
    assert.equal(hit?.response.text, 'zero');
    assert.ok(Math.abs(hit!.similarity - sim20) < 1e-6);
    assert.equal(await c.lookup('m', at(20), sim20 + 1e-4), null);
    assert.equal(await c.lookup('m', new Float32Array(4), 0.1), null, 'a zero vector matches nothing');
    assert.equal(await c.lookup('m', new Float32Array([1, 0, 0]), 0.1), null, 'another dimension matches nothing');
    const odd = new Float32Array([0.1, 0.7, 0.3, 0.9]);
    await c.store('m', odd, answer('odd'));
    assert.equal((await c.lookup('m', odd, 1))?.response.text, 'odd', 'an identical prompt hits even at threshold 1');
  });

  test('the best match wins', async () => {
    const c = new MemorySemanticCache({ maxEntries: 10, ttlSeconds: 60 });
    await c.store('m', at(0), answer('zero'));
    await c.store('m', at(30), answer('thirty'));
    await c.store('m', at(60), answer('sixty'));
    assert.equal((await c.lookup('m', at(35), 0.5))?.response.text, 'thirty');
    assert.equal((await c.lookup('m', at(50), 0.5))?.response.text, 'sixty');
  });

  test('entries are per model', async () => {
    const c = new MemorySemanticCache({ maxEntries: 10, ttlSeconds: 60 });
    await c.store('small', at(0), answer('small answer'));
    assert.equal(await c.lookup('big', at(0), 0.9), null);
    await c.store('big', at(0), answer('big answer'));
    assert.equal((await c.lookup('small', at(0), 0.9))?.response.text, 'small answer');
    assert.equal((await c.lookup('big', at(0), 0.9))?.response.text, 'big answer');
  });

  test('entries expire after the TTL (injected clock), hits do not extend it', async () => {
    let now = 1_000_000;
    const c = new MemorySemanticCache({ maxEntries: 10, ttlSeconds: 30, now: () => now });
    await c.store('m', at(0), answer('a'));
    now += 29_000;
    assert.ok(await c.lookup('m', at(0), 0.9));
    now += 999;
    assert.ok(await c.lookup('m', at(0), 0.9));
    now += 1;
    assert.equal(await c.lookup('m', at(0), 0.9), null);
    assert.equal(await c.size(), 0);
  });

  test('size bound: the least recently used entry is evicted', async () => {
    const c = new MemorySemanticCache({ maxEntries: 3, ttlSeconds: 60 });
    await c.store('m', at(0), answer('0'));
    await c.store('m', at(40), answer('40'));
    await c.store('m', at(80), answer('80'));
    assert.ok(await c.lookup('m', at(0), 0.999)); // 0 is now the most recent
    await c.store('m', at(120), answer('120'));
    assert.equal(await c.size(), 3);
    assert.equal(await c.lookup('m', at(40), 0.999), null, '40 was least recently used');
    for (const d of [0, 80, 120]) assert.equal((await c.lookup('m', at(d), 0.999))?.response.text, String(d));
  });

  test('stored responses are copies', async () => {
    const c = new MemorySemanticCache({ maxEntries: 3, ttlSeconds: 60 });
    const r = answer('x');
    await c.store('m', at(0), r);
    r.text = 'changed';
    assert.equal((await c.lookup('m', at(0), 0.9))?.response.text, 'x');
  });

  test('createSemanticCache and per-task thresholds', async () => {
    const settings = parseServeConfig({ cache: { task_thresholds: { code: 0.99 }, max_entries: 5 } }).cache;
    assert.equal(cacheThreshold(settings, 'code'), 0.99);
    assert.equal(cacheThreshold(settings, 'chat'), 0.95);
    assert.equal(cacheThreshold(settings, 'constructor'), 0.95);
    assert.ok(createSemanticCache(settings) instanceof MemorySemanticCache);
    assert.equal(createSemanticCache({ ...settings, enabled: false }), null);
  });
});

// ---------------------------------------------------------------------------
// router
// ---------------------------------------------------------------------------

describe('router', () => {
  const routing = parseServeConfig({
    routing: {
      tiers: ['small', 'medium', 'large'],
      rules: [
        { min_prompt_tokens: 1000, start: 'large' },
        { task: 'code', start: 'medium' },
        { task: 'code', min_prompt_tokens: 500, start: 'large' },
      ],
    },
  }).routing;

  test('rules set floors; the largest matching floor wins', () => {
    const r = createRouter(routing);
    assert.deepEqual(r.tiers({ task: 'chat', promptTokens: 10 }), ['small', 'medium', 'large']);
    assert.deepEqual(r.tiers({ task: 'code', promptTokens: 10 }), ['medium', 'large']);
    assert.deepEqual(r.tiers({ task: 'code', promptTokens: 500 }), ['large']);
    assert.deepEqual(r.tiers({ task: 'chat', promptTokens: 999 }), ['small', 'medium', 'large']);
    assert.deepEqual(r.tiers({ task: 'chat', promptTokens: 1000 }), ['large']);
  });

  test('without escalation only the start tier is returned', () => {
    const r = createRouter({ ...routing, escalate_on_failed_check: false });
    assert.deepEqual(r.tiers({ task: 'code', promptTokens: 1 }), ['medium']);
    assert.deepEqual(r.tiers({ task: 'x', promptTokens: 1 }), ['small']);
  });

  test('json_object responses must parse to an object', () => {
    const json = { type: 'json_object' };
    assert.deepEqual(checkResponse('{"a": 1}', json), { ok: true });
    assert.deepEqual(checkResponse(' {} ', json), { ok: true });
    for (const bad of ['{"a": 1', '[1, 2]', '"str"', '42', 'null', '', 'Sure! {"a":1}']) {
      const c = checkResponse(bad, json);
      assert.equal(c.ok, false, bad);
      assert.ok(c.reason && c.reason.length > 0);
    }
    assert.match(checkResponse('[1]', json).reason!, /not an object \(array\)/);
    assert.deepEqual(checkResponse('not json', { type: 'text' }), { ok: true });
    assert.deepEqual(checkResponse('not json'), { ok: true });
    assert.equal(createRouter(routing).checkResponse('{', json).ok, false);
  });

  test('runTiers escalates in order until a check passes, and reports each escalation', async () => {
    const tried: string[] = [];
    const escalations: string[] = [];
    const outputs: Record<string, string> = { small: 'oops', medium: '[1]', large: '{"ok":true}' };
    const r = await runTiers(
      ['small', 'medium', 'large'],
      async (m) => (tried.push(m), outputs[m]!),
      (text) => checkResponse(text, { type: 'json_object' }),
      (from, to) => escalations.push(`${from}->${to}`),
    );
    assert.deepEqual(tried, ['small', 'medium', 'large']);
    assert.deepEqual(escalations, ['small->medium', 'medium->large']);
    assert.deepEqual([r.model, r.result, r.escalations, r.check.ok], ['large', '{"ok":true}', 2, true]);

    const first = await runTiers(['small', 'large'], async () => '{}', (t) => checkResponse(t, { type: 'json_object' }));
    assert.deepEqual([first.model, first.escalations], ['small', 0]);

    const allFail = await runTiers(['small', 'large'], async (m) => m, (t) => checkResponse(t, { type: 'json_object' }));
    assert.deepEqual([allFail.model, allFail.result, allFail.escalations, allFail.check.ok], ['large', 'large', 1, false]);
    await assert.rejects(runTiers([], async () => '', () => ({ ok: true })), /no tiers/);
  });
});

// ---------------------------------------------------------------------------
// metrics
// ---------------------------------------------------------------------------

describe('metrics', () => {
  test('every series shows up after updates, on a registry of its own', async () => {
    const m = createServeMetrics();
    const other = createServeMetrics(); // a second registry must not clash with the first
    m.requests.inc({ route: '/v1/completions', model: 'small', status: '200' });
    m.ttft.observe({ model: 'small' }, 0.042);
    m.latency.observe({ model: 'small' }, 1.7);
    m.tokensIn.inc({ model: 'small' }, 12);
    m.tokensOut.inc({ model: 'small' }, 30);
    m.cost.inc({ model: 'small', task: m.taskLabel('extract') }, 0.25);
    m.cacheHits.inc({ model: 'small' });
    m.cacheMisses.inc({ model: 'small' }, 2);
    m.escalations.inc({ from: 'small', to: 'large' });
    m.queueDepth.set({ model: 'small' }, 3);
    m.batchSize.set({ model: 'small' }, 5);
    m.feedback.inc({ task: 'extract', outcome: 'success' });
    const text = await m.metricsText();
    for (const line of [
      'attn_requests_total{route="/v1/completions",model="small",status="200"} 1',
      'attn_time_to_first_token_seconds_bucket{le="0.05",model="small"} 1',
      'attn_time_to_first_token_seconds_bucket{le="0.025",model="small"} 0',
      'attn_request_duration_seconds_bucket{le="2.5",model="small"} 1',
      'attn_request_duration_seconds_count{model="small"} 1',
      'attn_prompt_tokens_total{model="small"} 12',
      'attn_completion_tokens_total{model="small"} 30',
      'attn_cost_total{model="small",task="extract"} 0.25',
      'attn_cache_hits_total{model="small"} 1',
      'attn_cache_misses_total{model="small"} 2',
      'attn_escalations_total{from="small",to="large"} 1',
      'attn_queue_depth{model="small"} 3',
      'attn_running_batch_size{model="small"} 5',
      'attn_feedback_total{task="extract",outcome="success"} 1',
    ]) {
      assert.ok(text.includes(line), `missing: ${line}`);
    }
    assert.match(text, /^process_resident_memory_bytes \d+/m);
    assert.match(m.contentType, /^text\/plain/);
    assert.ok(!(await other.metricsText()).includes('attn_requests_total{'), 'registries are separate');
  });

  test('task labels are bounded', () => {
    const m = createServeMetrics();
    for (let i = 0; i < 100; i++) assert.equal(m.taskLabel(`t${i}`), `t${i}`);
    assert.equal(m.taskLabel('t100'), '(other)');
    assert.equal(m.taskLabel('t5'), 't5');
  });
});

// ---------------------------------------------------------------------------
// logging and tracing
// ---------------------------------------------------------------------------

describe('traceparent', () => {
  const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
  const PARENT = '00f067aa0ba902b7';

  test('valid headers parse (the W3C example, and a future version with extra fields)', () => {
    assert.deepEqual(parseTraceparent(`00-${TRACE}-${PARENT}-01`), { version: '00', traceId: TRACE, parentId: PARENT, flags: '01' });
    assert.deepEqual(parseTraceparent(` 00-${TRACE}-${PARENT}-00 `)?.flags, '00');
    assert.equal(parseTraceparent(`01-${TRACE}-${PARENT}-01-whatever`)?.traceId, TRACE);
  });

  test('invalid headers are null', () => {
    for (const h of [
      undefined,
      null,
      '',
      'garbage',
      `00-${'0'.repeat(32)}-${PARENT}-01`, // all-zero trace id
      `00-${TRACE}-${'0'.repeat(16)}-01`, // all-zero parent id
      `ff-${TRACE}-${PARENT}-01`, // forbidden version
      `0-${TRACE}-${PARENT}-01`,
      `00-${TRACE.toUpperCase()}-${PARENT}-01`, // uppercase hex
      `00-${TRACE.slice(1)}-${PARENT}-01`, // short trace id
      `00-${TRACE}-${PARENT}0-01`, // long parent id
      `00-${TRACE}-${PARENT}-1`,
      `00-${TRACE}-${PARENT}-01-extra`, // version 00 has exactly four fields
      `00_${TRACE}_${PARENT}_01`,
      `zz-${TRACE}-${PARENT}-01`,
    ]) {
      assert.equal(parseTraceparent(h), null, String(h));
    }
  });

  test('newTraceContext continues a valid trace as a child span, else starts a new one', () => {
    const child = newTraceContext(`00-${TRACE}-${PARENT}-00`);
    assert.equal(child.traceId, TRACE);
    assert.equal(child.parentId, PARENT);
    assert.notEqual(child.spanId, PARENT);
    assert.equal(child.traceparent, `00-${TRACE}-${child.spanId}-00`);
    assert.deepEqual(parseTraceparent(child.traceparent)?.parentId, child.spanId);

    for (const header of [undefined, 'bad']) {
      const a = newTraceContext(header);
      const b = newTraceContext(header);
      assert.match(a.traceId, /^[0-9a-f]{32}$/);
      assert.match(a.spanId, /^[0-9a-f]{16}$/);
      assert.equal(a.parentId, undefined);
      assert.notEqual(a.traceId, b.traceId);
      assert.ok(parseTraceparent(a.traceparent));
    }
  });
});

describe('logging', () => {
  function capture(): { lines: () => Array<Record<string, unknown>>; stream: Writable } {
    const chunks: string[] = [];
    const stream = new Writable({
      write(chunk, _enc, cb) {
        chunks.push(String(chunk));
        cb();
      },
    });
    return { stream, lines: () => chunks.join('').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
  }

  const info = {
    requestId: 'cmpl-1',
    trace: newTraceContext(),
    route: '/v1/completions',
    model: 'small',
    task: 'extract',
    status: 200,
    usage: usage(4, 6),
    cost: 0.5,
    latencyMs: 12.5,
    prompt: 'my secret prompt',
  };

  test('requestLogFields: snake_case, absent fields omitted, the prompt only when enabled', () => {
    const f = requestLogFields(info, false);
    assert.deepEqual(f, {
      request_id: 'cmpl-1',
      trace_id: info.trace.traceId,
      span_id: info.trace.spanId,
      route: '/v1/completions',
      model: 'small',
      task: 'extract',
      status: 200,
      prompt_tokens: 4,
      completion_tokens: 6,
      cost: 0.5,
      latency_ms: 12.5,
    });
    assert.equal(requestLogFields(info, true).prompt, 'my secret prompt');
  });

  test('createLogger writes JSON lines and drops prompts unless logPrompts is on', async () => {
    const off = capture();
    const log = createLogger({ level: 'info', logPrompts: false, destination: off.stream });
    log.info({ ...requestLogFields(info, true), messages: [{ role: 'user', content: 'secret' }] }, 'request done');
    log.debug('not at info level');
    const [line, ...rest] = off.lines();
    assert.equal(rest.length, 0);
    assert.equal(line!.level, 'info');
    assert.equal(line!.msg, 'request done');
    assert.equal(line!.trace_id, info.trace.traceId);
    assert.equal(line!.prompt, undefined);
    assert.equal(line!.messages, undefined);
    assert.match(String(line!.time), /^\d{4}-\d\d-\d\dT/);

    const on = capture();
    createLogger({ logPrompts: true, destination: on.stream }).info(requestLogFields(info, true), 'request done');
    assert.equal(on.lines()[0]!.prompt, 'my secret prompt');
  });
});
