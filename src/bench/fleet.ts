import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetReport } from '../serve/fleet_ledger.js';
import { newRedisClient } from '../serve/redis.js';
import { DECODE_CONFIGS } from './decode.js';
import { clock, runClients, type RequestLog } from './fleet_clients.js';
import { startNginx, startRedis, startReplica, type Replica } from './fleet_processes.js';
import { writeBenchModel } from './serve.js';

/**
 * The fleet goal, measured: replicas of `attn serve` behind nginx, sharing a
 * redis-server; N concurrent streaming clients for a fixed time; one replica
 * SIGKILLed part-way. First a baseline: the same clients against one replica
 * directly. Reported: throughput before the kill against the baseline, every
 * request that failed (split into those cut by the kill while they ran on
 * the killed replica, and those *started after* the kill, which must be
 * none), and the fleet ledger's request count against the clients' own.
 *
 * Threads: the baseline replica has the machine to itself, so it gets every
 * core; the fleet's replicas share it, so each gets its share (cores /
 * replicas, at least 1) unless --threads says otherwise. Two replicas of
 * all-cores pools on one machine oversubscribe it: the native pool's
 * workers spin, then sleep, and a product split over a worker that the
 * other replica has descheduled waits a scheduler slice for it — that, not
 * the balancer, is what made the ratio swing from run to run.
 */

export interface FleetBenchOptions {
  replicas: number;
  clients: number;
  seconds: number;
  /** Seconds into the fleet run when replica 0 is SIGKILLed (≥ seconds: never). */
  killAt: number;
  baselineSeconds: number;
  promptTokens: number;
  maxTokens: number;
  config: string;
  modelDir?: string;
  threads?: number;
  /** Worker threads of the load generator (default 4): one cannot keep up with a fleet on a many-core machine. */
  clientThreads?: number;
  backend?: string;
  log: (line: string) => void;
}

async function load(url: string, o: FleetBenchOptions, seconds: number, vocab: number): Promise<{ log: RequestLog[]; t0: number }> {
  const t0 = clock();
  const job = { url, until: t0 + seconds * 1000, promptTokens: o.promptTokens, maxTokens: o.maxTokens, vocab };
  return { log: await runClients(job, o.clients, o.clientThreads ?? 4), t0 };
}

/**
 * Tokens per second over [from, to): each successful request's tokens are
 * spread evenly over its own duration, so a window counts the part of a
 * long generation that fell inside it rather than all or nothing.
 */
function rate(log: RequestLog[], from: number, to: number): number {
  let tokens = 0;
  for (const r of log) {
    if (!r.ok) continue;
    const overlap = Math.min(to, r.end) - Math.max(from, r.start);
    if (overlap > 0) tokens += (r.tokens * overlap) / Math.max(1e-9, r.end - r.start);
  }
  return tokens / ((to - from) / 1000);
}

export async function benchFleet(o: FleetBenchOptions): Promise<Record<string, unknown>> {
  const root = mkdtempSync(join(tmpdir(), 'attn-fleet-bench-'));
  const redis = await startRedis();
  const replicas: Replica[] = [];
  let single: Replica | null = null;
  let nginx: Awaited<ReturnType<typeof startNginx>> | null = null;
  const client$ = await newRedisClient({ url: redis.url });
  try {
    const modelDir = o.modelDir ?? join(root, 'model');
    if (!o.modelDir) writeBenchModel(o.config, modelDir);
    const vocab = o.modelDir ? 64 : DECODE_CONFIGS[o.config]!.vocab_size!;
    const config = join(root, 'serve.json');
    writeFileSync(config, JSON.stringify({ fleet: { redis_url: redis.url, namespace: 'bench' } }));
    const cores = availableParallelism();
    const baselineThreads = o.threads ?? cores;
    const replicaThreads = o.threads ?? Math.max(1, Math.floor(cores / o.replicas));
    const extra = (threads: number) => ['--no-cache', '--max-queue', '4096', '--threads', String(threads), ...(o.backend ? ['--backend', o.backend] : [])];
    await client$.connect();

    o.log(`baseline: ${o.clients} streaming clients against one replica (${baselineThreads} threads, the machine to itself) for ${o.baselineSeconds} s`);
    single = await startReplica(`bench=${modelDir}`, config, extra(baselineThreads));
    const base = await load(`http://127.0.0.1:${single.port}`, o, o.baselineSeconds, vocab);
    await single.stop();
    const warm = Math.min(5, o.baselineSeconds / 4) * 1000; // the first seconds fill the batch
    const baseline = rate(base.log, base.t0 + warm, base.t0 + o.baselineSeconds * 1000);
    const ledgerBefore = (await fleetReport(client$, 'bench')).requests;

    for (let i = 0; i < o.replicas; i++) replicas.push(await startReplica(`bench=${modelDir}`, config, extra(replicaThreads)));
    nginx = await startNginx(join(root, 'nginx'), replicas.map((r) => `127.0.0.1:${r.port}`));
    o.log(`fleet: ${o.replicas} replicas (${replicaThreads} threads each) behind nginx, ${o.clients} clients for ${o.seconds} s, replica 0 SIGKILLed at ${o.killAt} s`);
    let killedAt = Infinity;
    // "After the kill" starts when the process is known dead (its exit), not when the signal was sent.
    replicas[0]!.proc.once('exit', () => (killedAt = clock()));
    const kill = o.killAt < o.seconds ? setTimeout(() => {
      replicas[0]!.proc.kill('SIGKILL');
      o.log(`  SIGKILL replica on port ${replicas[0]!.port}`);
    }, o.killAt * 1000) : null;
    const run = await load(nginx.url, o, o.seconds, vocab);
    if (kill) clearTimeout(kill);
    await new Promise((r) => setTimeout(r, 500)); // the survivors' last ledger writes
    const ledger = (await fleetReport(client$, 'bench')).requests - ledgerBefore;

    const ok = run.log.filter((r) => r.ok).length;
    const failed = run.log.filter((r) => !r.ok);
    const afterKill = failed.filter((r) => r.start >= killedAt);
    const before = rate(run.log, run.t0 + warm, Math.min(killedAt, run.t0 + o.seconds * 1000));
    const after = Number.isFinite(killedAt) ? rate(run.log, killedAt + 1000, run.t0 + o.seconds * 1000) : null;
    return {
      workload: 'fleet',
      config: o.modelDir ? 'model-dir' : o.config,
      replicas: o.replicas,
      clients: o.clients,
      seconds: o.seconds,
      baseline_threads: baselineThreads,
      replica_threads: replicaThreads,
      client_threads: o.clientThreads ?? 4,
      baseline_tokens_per_s: Math.round(baseline),
      fleet_tokens_per_s_before_kill: Math.round(before),
      speedup_before_kill: before / baseline,
      fleet_tokens_per_s_after_kill: after === null ? null : Math.round(after),
      // Tokens/s per replica left after the kill (behind the balancer) against the baseline replica
      // (reached directly): what the balancer's path costs a replica, when the survivors have the
      // cores they need. The fleet's ratio cannot pass replicas × this.
      after_kill_per_replica_vs_baseline: after === null ? null : after / (o.replicas - 1) / baseline,
      requests_ok: ok,
      requests_failed: failed.length,
      failed_in_flight_at_kill: failed.length - afterKill.length,
      failed_started_after_kill: afterKill.length,
      failure_examples: failed.slice(0, 3).map((r) => r.error),
      ledger_requests: ledger,
      // A replica records a request in the ledger when it has generated the reply, just before the
      // last bytes leave; a SIGKILL between the two leaves a request the ledger counts and the
      // client saw fail. So the ledger must hold every answer the clients received, plus at most
      // the requests that failed in flight at the kill — never fewer, never others.
      ledger_unreceived: ledger - ok,
      ledger_matches_clients: ledger >= ok && ledger - ok <= failed.length - afterKill.length,
    };
  } finally {
    await nginx?.stop();
    await single?.stop();
    for (const r of replicas) await r.stop();
    await client$.close().catch(() => {});
    await redis.stop();
    rmSync(root, { recursive: true, force: true });
  }
}
