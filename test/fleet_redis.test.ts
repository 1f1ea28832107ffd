/**
 * The state a fleet shares through Redis, with two in-process servers and a
 * private redis-server: rate limits hold across replicas, the ledger adds
 * up across them (`attn serve --report --fleet`), and when Redis goes away
 * mid-run the servers keep serving on local state, say so (log, gauge),
 * and share again — with the ledger catching up — once it is back.
 * Feedback reaches the ledger through whichever replica it is posted to.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { fleetReport as readFleetReport } from '../src/serve/fleet_ledger.js';
import { createLogger } from '../src/serve/logging.js';
import { REDIS_BIN, skipUnless, startRedis } from './fleet_fixture.js';
import { postJson, startTiny, until } from './serve_fixture.js';

const skip = skipUnless(REDIS_BIN, 'redis-server', 'ATTN_REQUIRE_REDIS');
const CLI = join(process.cwd(), 'dist/src/cli/main.js');

function fleetReport(url: string, namespace: string): Promise<{ requests: number; cost: number; by_replica: Array<{ replica: string; requests: number }>; by_task: Array<{ task: string; requests: number; successes: number; failures: number }> }> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [CLI, 'serve', '--report', '--fleet', url, '--namespace', namespace, '--json'], { encoding: 'utf8' }, (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(JSON.parse(stdout))));
  });
}

describe('fleet: shared state in Redis', { skip }, () => {
  it('rate limits hold across two servers, and the fleet report adds up both ledgers', async () => {
    setBackend('js');
    const redis = await startRedis();
    const namespace = `attn-test-${randomBytes(4).toString('hex')}`;
    const configInput = { fleet: { redis_url: redis.url, namespace }, guardrails: { rate_limit: { per_minute: 0.01, burst: 3 } }, prices: { tiny: { input_per_million: 1_000_000, output_per_million: 0 } } };
    const a = await startTiny({ configInput: { ...configInput, fleet: { ...configInput.fleet, replica: 'a' } } });
    const b = await startTiny({ configInput: { ...configInput, fleet: { ...configInput.fleet, replica: 'b' } } });
    try {
      const ask = (s: typeof a, prompt: string) => postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt, max_tokens: 2 }, { 'x-attn-task': 'shared' });
      assert.equal((await ask(a, 'one')).status, 200);
      assert.equal((await ask(a, 'two')).status, 200);
      const third = await ask(b, 'three');
      assert.equal(third.status, 200);
      assert.equal(third.headers.get('x-attn-replica'), 'b');
      const limited = await ask(b, 'four');
      assert.equal(limited.status, 429, 'the burst of 3 is the fleet\'s, not each server\'s');
      assert.equal((await ask(a, 'five')).status, 429);
      const report = await fleetReport(redis.url, namespace);
      assert.equal(report.requests, 3);
      assert.equal(report.cost, 'one'.length + 'two'.length + 'three'.length);
      assert.deepEqual(report.by_replica, [{ replica: 'a', requests: 2 }, { replica: 'b', requests: 1 }]);
      assert.deepEqual(report.by_task.map((t) => [t.task, t.requests]), [['shared', 3]]);
    } finally {
      await a.close();
      await b.close();
      await redis.stop();
    }
  });

  it('Redis gone mid-run: the server keeps serving on local state and says so; once back, limits are shared again and the ledger catches up', async () => {
    setBackend('js');
    const redis = await startRedis();
    const namespace = `attn-test-${randomBytes(4).toString('hex')}`;
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(s) } as never });
    const s = await startTiny({ logger, configInput: { fleet: { redis_url: redis.url, namespace }, guardrails: { rate_limit: { per_minute: 600, burst: 100 }, token_budget: { tokens: 100_000 } } } });
    const ask = () => postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'Hello', max_tokens: 2 });
    const gauge = async () => /^attn_shared_state_up (\d)$/m.exec(await (await fetch(`${s.url}/metrics`)).text())![1];
    try {
      assert.equal((await ask()).status, 200);
      assert.equal(await gauge(), '1');
      await redis.stop();
      for (let i = 0; i < 2; i++) {
        const r = await ask();
        assert.equal(r.status, 200, JSON.stringify(r.json));
      }
      const down = lines.filter((l) => l.includes('Redis is unreachable'));
      assert.equal(down.length, 1, 'said once');
      assert.match(down[0]!, /rate limits and budgets now hold per replica/);
      assert.equal(await gauge(), '0');
      const logged = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.msg === 'request' && l.route === 'completions');
      assert.equal(logged.at(-1)!.shared_state, 'local');
      assert.deepEqual(logged.at(-1)!.guardrails, { rate_limit: 'pass', token_budget: 'pass' }, 'only the checks the section names');

      await redis.start(); // empty: it kept nothing
      await until(() => s.context.ops!.shared!.client.isReady, 15_000, 'the client to reconnect');
      assert.equal((await ask()).status, 200);
      assert.ok(lines.some((l) => l.includes('Redis is reachable again')));
      assert.equal(await gauge(), '1');
      // The two requests served while Redis was away, and the one after, reach the fleet totals.
      const report = await fleetReport(redis.url, namespace);
      assert.equal(report.requests, 3);
    } finally {
      await s.close();
      await redis.stop();
    }
  });

  it('feedback posted to another replica than the one that served the request is counted once, in the fleet totals', async () => {
    setBackend('js');
    const redis = await startRedis();
    const namespace = `attn-test-${randomBytes(4).toString('hex')}`;
    const fleet = (replica: string) => ({ fleet: { redis_url: redis.url, namespace, replica } });
    const a = await startTiny({ configInput: fleet('a') });
    const b = await startTiny({ configInput: fleet('b') });
    const pick = (t: { successes: number; failures: number }) => [t.successes, t.failures];
    const feedback = (s: typeof a, id: string, success: boolean) => postJson(`${s.url}/v1/feedback`, { id, success });
    // The fleet totals read straight from Redis (the CLI's --report --fleet is tested above).
    const task = async () => (await readFleetReport(a.context.ops!.shared!.client, namespace)).by_task.find((t) => t.task === 'graded')!;
    try {
      const served = await postJson(`${a.url}/v1/completions`, { model: 'tiny', prompt: 'Grade me', max_tokens: 2 }, { 'x-attn-task': 'graded' });
      assert.equal(served.status, 200);
      const id = served.json.id as string;
      const onB = await feedback(b, id, true);
      assert.equal(onB.status, 200, JSON.stringify(onB.json));
      assert.deepEqual(onB.json, { id, success: true, recorded: true });
      assert.deepEqual(pick(await task()), [1, 0]);
      // A later verdict replaces the earlier one, whichever replica gets either.
      assert.equal((await feedback(a, id, false)).status, 200);
      assert.deepEqual(pick(await task()), [0, 1]);
      assert.equal((await feedback(b, id, false)).status, 200);
      assert.deepEqual(pick(await task()), [0, 1]);
      // Counted under the request's task on the replica that took the feedback.
      assert.match(await (await fetch(`${b.url}/metrics`)).text(), /attn_feedback_total\{task="graded",outcome="success"\} 1/);
      const unknown = await feedback(b, 'cmpl-nobody', true);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.json.error.code, 'request_not_found');
    } finally {
      await a.close();
      await b.close();
      await redis.stop();
    }
  });
});
