/**
 * A fleet on loopback: two `attn serve` processes behind a real nginx,
 * sharing a private redis-server. Both replicas answer; after one is
 * SIGKILLed every request is still answered (nginx sends what it could not
 * deliver to the other); `attn serve --report --fleet` counts exactly the
 * answers the client received. A replica stopped with SIGTERM while traffic
 * flows (a rolling restart) costs no request either: nginx reuses kept-alive
 * connections, so the draining replica's 503s and closed connections must
 * be sent on to the other. Skips without nginx or redis-server, fails
 * under ATTN_REQUIRE_NGINX=1 / ATTN_REQUIRE_REDIS=1 (CI).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { NGINX_BIN, REDIS_BIN, skipUnless, startNginx, startRedis, startReplica, type Replica } from './fleet_fixture.js';
import { tinyModelDir } from './serve_fixture.js';

const skip = skipUnless(REDIS_BIN, 'redis-server', 'ATTN_REQUIRE_REDIS') || skipUnless(NGINX_BIN, 'nginx', 'ATTN_REQUIRE_NGINX');
const CLI = join(process.cwd(), 'dist/src/cli/main.js');

/** One request through the balancer; streamed ones are read to [DONE]. Resolves with the replica that answered. */
async function ask(url: string, i: number): Promise<string> {
  const stream = i % 2 === 0;
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-attn-task': 'fleet' },
    body: JSON.stringify({ model: 'tiny', messages: [{ role: 'user', content: `Question ${i}` }], max_tokens: 4, stream }),
  });
  const body = await res.text();
  assert.equal(res.status, 200, body);
  if (stream) assert.match(body, /data: \[DONE\]\n\n$/);
  else assert.equal(JSON.parse(body).object, 'chat.completion');
  return res.headers.get('x-attn-replica') ?? '?';
}

interface Fleet {
  url: string;
  config: string;
  replicas: Replica[];
}

/** Two replicas of a tiny model (js backend) behind nginx, sharing a private redis-server, for the length of `body`. */
async function withFleet(namespace: string, body: (fleet: Fleet) => Promise<void>): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), 'attn-fleet-'));
  const model = tinyModelDir('tiny');
  const redis = await startRedis();
  const config = join(root, 'serve.json');
  writeFileSync(config, JSON.stringify({ fleet: { redis_url: redis.url, namespace } }));
  const replicas = [await startReplica(`tiny=${model.dir}`, config, ['--backend', 'js']), await startReplica(`tiny=${model.dir}`, config, ['--backend', 'js'])];
  const nginx = await startNginx(join(root, 'nginx'), replicas.map((r) => `127.0.0.1:${r.port}`));
  try {
    await body({ url: nginx.url, config, replicas });
  } finally {
    await nginx.stop();
    for (const r of replicas) await r.stop();
    await redis.stop();
    model.cleanup();
    rmSync(root, { recursive: true, force: true });
  }
}

describe('fleet: two replicas behind nginx', { skip }, () => {
  it('both serve; after one is SIGKILLed every request is still answered; the fleet ledger counts every answer', async () => {
    await withFleet('fleet-test', async ({ url, config, replicas }) => {
      const seen = new Set<string>();
      let answered = 0;
      const batch = async (from: number, n: number) => {
        for (let i = from; i < from + n; i += 4) {
          for (const replica of await Promise.all([0, 1, 2, 3].map((k) => ask(url, i + k)))) seen.add(replica);
          answered += 4;
        }
      };
      await batch(0, 16);
      assert.equal(seen.size, 2, `both replicas answered (${[...seen].join(', ')})`);
      await replicas[0]!.stop('SIGKILL');
      seen.clear();
      await batch(16, 16);
      assert.equal(seen.size, 1, 'the survivor answered everything');
      const report = await new Promise<{ requests: number; by_replica: Array<{ requests: number }> }>((resolve, reject) =>
        execFile(process.execPath, [CLI, 'serve', '--report', '--config', config, '--json'], { encoding: 'utf8' }, (err, out, errOut) => (err ? reject(new Error(errOut)) : resolve(JSON.parse(out)))),
      );
      assert.equal(report.requests, answered);
      assert.equal(report.by_replica.length, 2);
      assert.equal(report.by_replica.reduce((s, r) => s + r.requests, 0), answered);
    });
  });
});

describe('fleet: a rolling restart behind nginx', { skip }, () => {
  it('a replica stopped with SIGTERM under steady traffic: every request is answered, and both replicas served', async () => {
    await withFleet('fleet-drain', async ({ url, replicas }) => {
      const seen = new Map<string, number>();
      const failures: string[] = [];
      let asking = true;
      let i = 0;
      // Six clients asking back to back, so that kept-alive connections to both replicas are busy and idle
      // when the SIGTERM lands.
      const client = async () => {
        while (asking) {
          const n = i++;
          try {
            const replica = await ask(url, n);
            seen.set(replica, (seen.get(replica) ?? 0) + 1);
          } catch (e) {
            failures.push((e as Error).message.slice(0, 200));
          }
        }
      };
      const clients = Array.from({ length: 6 }, client);
      await new Promise((r) => setTimeout(r, 1500));
      await replicas[0]!.stop('SIGTERM');
      const atStop = i;
      await new Promise((r) => setTimeout(r, 1500));
      asking = false;
      await Promise.all(clients);
      assert.deepEqual(failures, [], `${failures.length} of ${i} requests failed`);
      assert.equal(seen.size, 2, `both replicas answered (${[...seen.keys()].join(', ')})`);
      assert.ok(i - atStop >= 6, `requests went on after the stop (${i - atStop})`);
    });
  });
});

describe('attn bench fleet', { skip }, () => {
  it('runs its clients over worker threads, and counts every request the ledger counts', async () => {
    const out = await new Promise<string>((resolve, reject) =>
      execFile(
        process.execPath,
        [CLI, 'bench', 'fleet', '--config', 'S', '--threads', '1', '--backend', 'js', '--clients', '4', '--client-threads', '2', '--duration', '6', '--kill-at', '3', '--baseline', '3', '--max-tokens', '4', '--json'],
        { encoding: 'utf8', cwd: tmpdir() },
        (err, stdout, stderr) => (err ? reject(new Error(stderr)) : resolve(stdout)),
      ),
    );
    const row = JSON.parse(out.trim().split('\n').pop()!) as Record<string, unknown>;
    assert.equal(row.client_threads, 2);
    assert.ok((row.requests_ok as number) > 0, 'requests were answered');
    assert.equal(row.failed_started_after_kill, 0);
    assert.equal(row.ledger_matches_clients, true, `ledger ${row.ledger_requests} vs clients ${row.requests_ok} (failed in flight at the kill: ${row.failed_in_flight_at_kill})`);
    assert.ok((row.baseline_tokens_per_s as number) > 0 && (row.fleet_tokens_per_s_before_kill as number) > 0);
  });
});
