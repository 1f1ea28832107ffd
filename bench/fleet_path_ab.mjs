// What nginx's path costs one `attn serve` replica, and what upstream keep-alive saves:
//   node bench/fleet_path_ab.mjs [ROUNDS=3] [SECONDS=20] [CLIENTS=32] [THREADS=1]
// Each round runs, in an order that turns by round, one replica (config S, --threads THREADS)
// reached three ways by the same streaming clients as `attn bench fleet` (16-token prompts, 32
// tokens each): directly; behind nginx with no upstream keep-alive (a new connection per request);
// behind nginx with nginx_conf.ts's keep-alive. Printed per arm: tokens/s, and the CPU each process
// spent per 1 000 tokens (read from /proc: the replica, nginx's master and worker, the clients'
// process); then each nginx arm's tokens/s against the direct arm of the same round, with medians.
// The first 3 s of each arm (the batch filling) are left out. Linux only; needs nginx and
// redis-server, and `npm run build` first.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clock, runClients } from '../dist/src/bench/fleet_clients.js';
import { startNginx, startRedis, startReplica } from '../dist/src/bench/fleet_processes.js';
import { writeBenchModel } from '../dist/src/bench/serve.js';

const [rounds = 3, seconds = 20, clients = 32, threads = 1] = process.argv.slice(2).map(Number);
const WARM_MS = 3000;
const TICKS = 100; // USER_HZ

const cpuSeconds = (pid) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / TICKS;
};
const childrenOf = (ppid) =>
  readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        return readFileSync(`/proc/${d}/stat`, 'utf8').split(') ')[1].split(' ')[1] === String(ppid);
      } catch {
        return false;
      }
    })
    .map(Number);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const root = mkdtempSync(join(tmpdir(), 'attn-fleet-path-'));
const model = join(root, 'model');
writeBenchModel('S', model);
const redis = await startRedis();
const config = join(root, 'serve.json');
writeFileSync(config, JSON.stringify({ fleet: { redis_url: redis.url, namespace: 'path-ab' } }));

async function arm(path) {
  const replica = await startReplica(`bench=${model}`, config, ['--no-cache', '--max-queue', '4096', '--threads', String(threads)]);
  const nginx = path === 'direct' ? null : await startNginx(join(root, `nginx-${path}`), [`127.0.0.1:${replica.port}`], { keepalive: path === 'nginx-keepalive' ? 64 : 0 });
  const nginxPids = () => childrenOf(process.pid).filter((p) => readFileSync(`/proc/${p}/cmdline`, 'utf8').includes('nginx')).flatMap((p) => [p, ...childrenOf(p)]);
  const snap = () => ({ replica: cpuSeconds(replica.proc.pid), nginx: nginxPids().reduce((s, p) => s + cpuSeconds(p), 0), self: process.cpuUsage() });
  try {
    const t0 = clock();
    let a = null;
    const timer = setTimeout(() => (a = snap()), WARM_MS);
    const log = await runClients({ url: nginx?.url ?? `http://127.0.0.1:${replica.port}`, until: t0 + seconds * 1000, promptTokens: 16, maxTokens: 32, vocab: 65 }, clients, 1);
    clearTimeout(timer);
    const b = snap();
    const from = t0 + WARM_MS;
    const to = t0 + seconds * 1000;
    let tokens = 0;
    for (const r of log) {
      if (!r.ok) continue;
      const overlap = Math.min(to, r.end) - Math.max(from, r.start);
      if (overlap > 0) tokens += (r.tokens * overlap) / (r.end - r.start);
    }
    const k = tokens / 1000;
    const clientsCpu = (b.self.user - a.self.user + b.self.system - a.self.system) / 1e6;
    return {
      path,
      tokens_per_s: Math.round(tokens / ((to - from) / 1000)),
      failed: log.filter((r) => !r.ok).length,
      cpu_ms_per_1k_tokens: { replica: +(((b.replica - a.replica) * 1000) / k).toFixed(1), nginx: +(((b.nginx - a.nginx) * 1000) / k).toFixed(1), clients: +((clientsCpu * 1000) / k).toFixed(1) },
    };
  } finally {
    await nginx?.stop();
    await replica.stop();
  }
}

const paths = ['direct', 'nginx-no-keepalive', 'nginx-keepalive'];
const ratios = { 'nginx-no-keepalive': [], 'nginx-keepalive': [] };
const cpu = { direct: [], 'nginx-no-keepalive': [], 'nginx-keepalive': [] };
try {
  for (let r = 0; r < rounds; r++) {
    const order = paths.map((_, i) => paths[(i + r) % paths.length]);
    const res = {};
    for (const p of order) {
      res[p] = await arm(p);
      console.log(`round ${r} ${JSON.stringify(res[p])}`);
    }
    for (const p of paths) cpu[p].push(res[p].cpu_ms_per_1k_tokens.replica);
    for (const p of Object.keys(ratios)) ratios[p].push(res[p].tokens_per_s / res.direct.tokens_per_s);
  }
  for (const p of Object.keys(ratios)) console.log(`${p}: tokens/s against direct ${ratios[p].map((x) => x.toFixed(3)).join(', ')}; median ${median(ratios[p]).toFixed(3)}`);
  for (const p of paths) console.log(`${p}: replica CPU ms per 1 000 tokens, median ${median(cpu[p]).toFixed(1)}`);
} finally {
  await redis.stop();
  rmSync(root, { recursive: true, force: true });
}
