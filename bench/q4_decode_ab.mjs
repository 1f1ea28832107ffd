// A/B of attn's Q4_0 batch-1 decode against the memory-read limit, attn only (no llama.cpp):
//   node bench/q4_decode_ab.mjs FILE SHAPE THREADS ROUNDS STEPS 'ENV_A' 'ENV_B' [trace]
// ENV_x: space-separated K=V pairs set for that arm's worker ('-' for none); TREE=DIR runs that arm's
// worker from another built checkout (DIR/dist/src/bench/llama_worker.js, its own addon), to compare
// two builds, e.g. 'TREE=/tmp/base' '-'. Each round: the
// limit (fresh worker), A, B (order alternating by round), the limit again; fraction = weight
// GB/s / the higher limit of that round. Prints per-round fractions and medians.
import { spawnSync } from 'node:child_process';
import { runLlamaWorker, streamBandwidth, weightBytesPerToken, LLAMA_BENCH_SHAPES } from '../dist/src/bench/llama.js';

const [file, shape, threadsS, roundsS, stepsS, envA = '-', envB = '-', trace] = process.argv.slice(2);
const threads = Number(threadsS), rounds = Number(roundsS), steps = Number(stepsS);
const bytes = weightBytesPerToken(LLAMA_BENCH_SHAPES[shape], 'q4_0');
const parse = (s) => (s === '-' ? {} : Object.fromEntries(s.split(' ').filter(Boolean).map((kv) => kv.split('='))));
const arms = { A: parse(envA), B: parse(envB) };
const base = { ...process.env };
const run = (arm) => {
  for (const k of Object.keys({ ...arms.A, ...arms.B })) delete process.env[k];
  Object.assign(process.env, arms[arm]);
  try {
    const args = { impl: 'attn', file, threads, decodeSteps: steps, prefillReps: 0, trace: trace === 'trace' };
    const tree = process.env.TREE;
    if (!tree) return runLlamaWorker(args);
    const r = spawnSync(process.execPath, [`${tree}/dist/src/bench/llama_worker.js`, JSON.stringify(args)], { encoding: 'utf8', maxBuffer: 1 << 22 });
    if (r.status !== 0) throw new Error(`worker of ${tree}: ${(r.stderr || `exit ${r.status}`).trim().split('\n').slice(-3).join(' ')}`);
    return JSON.parse(r.stdout.trim().split('\n').at(-1));
  } finally {
    for (const k of Object.keys(process.env)) if (!(k in base)) delete process.env[k];
    Object.assign(process.env, base);
  }
};
const fr = { A: [], B: [] };
const traces = { A: [], B: [] };
for (let r = 0; r < rounds; r++) {
  const before = streamBandwidth(threads).gb_per_s;
  const order = r % 2 ? ['B', 'A'] : ['A', 'B'];
  const res = {};
  for (const arm of order) res[arm] = run(arm);
  const after = streamBandwidth(threads).gb_per_s;
  const lim = Math.max(before, after);
  const line = [];
  for (const arm of ['A', 'B']) {
    const gb = (bytes * res[arm].decode_tokens_per_s) / 1e9;
    fr[arm].push(gb / lim);
    line.push(`${arm} ${res[arm].decode_tokens_per_s.toFixed(2)} tok/s ${gb.toFixed(1)} GB/s = ${(gb / lim).toFixed(3)}`);
    if (res[arm].decode_trace) traces[arm].push(res[arm].decode_trace);
    if (res[arm].decode_trace) line.push(JSON.stringify(Object.fromEntries(Object.entries(res[arm].decode_trace).filter(([k]) => !/^t\d_.*_(first)$/.test(k)).map(([k, v]) => [k, +v.toFixed(3)]))));
  }
  console.log(`round ${r} ${threads}t limit ${lim.toFixed(1)} (before ${before.toFixed(1)}, after ${after.toFixed(1)}): ${line.join('; ')}`);
}
const med = (a) => { const s = [...a].sort((x, y) => x - y); const m = s.length >> 1; return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2; };
console.log(`median fraction A ${med(fr.A).toFixed(3)} [${fr.A.map((x) => x.toFixed(2))}]  B ${med(fr.B).toFixed(3)} [${fr.B.map((x) => x.toFixed(2))}]`);
// With trace: each arm's median of the per-token figures over the rounds (CPU ms a token, ms outside the call, per-phase ms).
for (const arm of ['A', 'B']) {
  if (!traces[arm].length) continue;
  const keys = Object.keys(traces[arm][0]).filter((k) => /^(step_cpu_ms|outside_ms|outside_cpu_ms|call_ms)$|^t\d_.*_(work|wait)$/.test(k));
  console.log(`median trace ${arm}: ${keys.map((k) => `${k} ${med(traces[arm].map((t) => t[k])).toFixed(3)}`).join(', ')}`);
}
