// Non-streamed completions against one `attn serve` replica of a built checkout (1 thread, config S,
// fleet ledger in a private redis-server): requests per second after a 3 s warm-up.
//   node bench/serve_nonstream_rps.mjs [TREE=.] [CLIENTS=32] [SECONDS=15]
// TREE: the root of a built checkout (its dist/ and addon), to compare two builds run after run.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
const [tree = process.cwd(), N = 32, S = 15] = [process.argv[2], ...process.argv.slice(3).map(Number)];
const { writeBenchModel } = await import(`${resolve(tree)}/dist/src/bench/serve.js`);
const { startReplica, startRedis } = await import(`${resolve(tree)}/dist/src/bench/fleet_processes.js`);
const root = mkdtempSync(join(tmpdir(), 'ns-'));
writeBenchModel('S', join(root, 'model'));
const redis = await startRedis();
const config = join(root, 'serve.json');
writeFileSync(config, JSON.stringify({ fleet: { redis_url: redis.url, namespace: 'ns' } }));
const rep = await startReplica(`bench=${join(root, 'model')}`, config, ['--no-cache', '--max-queue', '4096', '--threads', '1']);
const url = `http://127.0.0.1:${rep.port}/v1/completions`;
let done = 0, t0 = 0; const end = performance.now() + S * 1000; const warm = performance.now() + 3000;
const client = async (seed) => { let i = 0; while (performance.now() < end) { const prompt = Array.from({ length: 16 }, (_, k) => String.fromCodePoint(0x100 + ((seed * 31 + i * 7 + k) % 65))).join(''); i++;
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'bench', prompt, max_tokens: 32, temperature: 0 }) });
  const j = await r.json(); if (r.status !== 200) throw new Error(JSON.stringify(j)); if (performance.now() > warm) { if (!t0) t0 = performance.now(); done++; } } };
await Promise.all(Array.from({ length: N }, (_, s) => client(s)));
console.log(JSON.stringify({ tree, rps: +(done / ((performance.now() - t0) / 1000)).toFixed(1) }));
await rep.stop();
await redis.stop();
rmSync(root, { recursive: true, force: true });
