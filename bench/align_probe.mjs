// What a base model of `attn align demo` can do before SFT: trains one on the demo's generated
// corpus (src/data/instructions.ts alignCorpus) and probes it greedily, after a newline, on new
// items it has not read: sums, copying and reversing made-up words, two-animal look-ups.
// After `npx tsc` and the native build:
//   TOK=char POS=learned STEPS=1000 node bench/align_probe.mjs OUTDIR
//   TOK=bpe VOCAB=512 POS=rope STEPS=1000 node bench/align_probe.mjs OUTDIR
//   TOK=digits POS=rope STEPS=2000 node bench/align_probe.mjs OUTDIR   (characters, numbers whole)
// Other knobs: CHARS (corpus size, default 200000), BLOCK (context, 256), LAYERS (4), HEADS (4), THREADS (1), SEED (1337), N (items per probe, 40),
// LR (3e-3), QUERIES (look-ups per corpus story, at most; default 1), FABLES (fable characters, default CHARS/10),
// STORIES (the look-up stories' share of the fact lines, default 0.27), INIT (continue from this model: a second stage),
// CORPUS_SEED_OFFSET (another corpus draw), CURVE (probe the look-ups every CURVE steps too: a copy of the checkpoint at each evaluation).
// With an existing OUTDIR/base and PROBE_ONLY=1 it only probes. Prints one JSON line.
import { existsSync, writeFileSync, mkdirSync, cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
const root = new URL('../dist/src', import.meta.url).pathname;
const { alignCorpus, madeUpWord } = await import(`${root}/data/instructions.js`);
const { train } = await import(`${root}/train/trainer.js`);
const { parseTrainOptions } = await import(`${root}/train/options.js`);
const { useBackend } = await import(`${root}/cli/backend_flags.js`);
const { loadModel } = await import(`${root}/io/model_dir.js`);
const { generateText } = await import(`${root}/generate/stream.js`);
const { Rng } = await import(`${root}/util/rng.js`);

const out = process.argv[2] ?? '/tmp/align_probe';
const env = (k, d) => process.env[k] ?? d;
const tok = env('TOK', 'char');
const steps = Number(env('STEPS', 1000));
const chars = Number(env('CHARS', 200_000));
const threads = Number(env('THREADS', 1));
const seed = Number(env('SEED', 1337));
const n = Number(env('N', 40));
const curve = Number(env('CURVE', 0));
const snapshots = [];
mkdirSync(out, { recursive: true });
const backend = { backend: 'native', threads };
const t0 = performance.now();
const probeOnly = Boolean(process.env.PROBE_ONLY && existsSync(join(out, 'base')));
if (!probeOnly) {
  const fables = process.env.FABLES ? { fableChars: Number(process.env.FABLES) } : {};
  let text = alignCorpus(chars, seed + Number(env('CORPUS_SEED_OFFSET', 0)), { queries: Number(env('QUERIES', 1)), stories: Number(env('STORIES', 0.27)), ...fables });
  if (process.env.INIT) {
    // A second stage keeps the first one's characters: lines with a character it never saw are left out.
    const known = loadModel(process.env.INIT).tokenizer;
    const fits = (line) => { try { known.encode(line); return true; } catch { return false; } };
    text = text.split('\n').filter(fits).join('\n');
  }
  writeFileSync(join(out, 'corpus.txt'), text);
  const raw = {
    nHead: Number(env('HEADS', 4)), nEmbd: 128, blockSize: Number(env('BLOCK', 256)), batchSize: 10, maxIters: steps, lr: Number(env('LR', 3e-3)), minLr: Number(env('LR', 3e-3)) / 10,
    warmupIters: 50, evalInterval: curve || steps, evalIters: 5, seed, logInterval: 100_000, tokenizer: tok, positions: env('POS', 'learned'),
    ...(tok === 'bpe' || tok === 'word' ? { vocabSize: Number(env('VOCAB', 512)) } : {}), nLayer: Number(env('LAYERS', 4)),
  };
  useBackend(backend);
  const run = { text: readFileSync(join(out, 'corpus.txt'), 'utf8'), dataPath: join(out, 'corpus.txt'), options: parseTrainOptions(raw), out: join(out, 'base'), ...(process.env.INIT ? { init: process.env.INIT } : {}) };
  train(run, {
    onCheckpoint: ({ step, dir }) => {
      if (!curve || step >= steps) return;
      cpSync(dir, join(out, `step${step}`), { recursive: true });
      snapshots.push(step);
    },
    onEval: (e) => process.stderr.write(`step ${e.step}: ${JSON.stringify(e)}\n`),
  });
}
const trainSeconds = (performance.now() - t0) / 1000;
const { model, tokenizer } = loadModel(join(out, 'base'));

// New items: a seed the corpus never used.
const rng = new Rng(seed + 99);
const pick = (xs) => xs[rng.int(xs.length)];
const ANIMALS = ['fox', 'crow', 'hare', 'lion', 'mouse', 'wolf', 'lamb', 'owl', 'ant', 'goat', 'dog', 'cat', 'frog', 'stork'];
const THINGS = ['a bone', 'some grain', 'a golden egg', 'a warm coat', 'a jug', 'a red apple', 'a basket', 'some cheese', 'a bell', 'a map'];
const probes = { sums: [], copy_made_up: [], reverse_made_up: [], lookup_two: [] };
for (let i = 0; i < n; i++) {
  const a = rng.int(10), b = rng.int(10);
  probes.sums.push([`\n${a} + ${b} =`, ` ${a + b}.`]);
  const w = madeUpWord(rng);
  probes.copy_made_up.push([`\nSay ${w}:`, ` ${w}.`]);
  const v = madeUpWord(rng);
  probes.reverse_made_up.push([`\nThe word ${v} backwards is`, ` ${[...v].reverse().join('')}.`]);
  const x = pick(ANIMALS); let y = pick(ANIMALS); while (y === x) y = pick(ANIMALS);
  const tx = pick(THINGS); let ty = pick(THINGS); while (ty === tx) ty = pick(THINGS);
  const first = i % 2 === 0;
  probes.lookup_two.push([`\nThe ${x} has ${tx}. The ${y} has ${ty}. So the ${first ? x : y} has`, ` ${first ? tx : ty}.`]);
}
const result = probeOnly
  ? { base: join(out, 'base'), vocab: tokenizer.vocabSize }
  : { tok, vocab: tokenizer.vocabSize, positions: env('POS', 'learned'), steps, chars, queries: Number(env('QUERIES', 1)), heads: Number(env('HEADS', 4)), train_seconds: Math.round(trainSeconds) };
async function score(m, t, items) {
  const maxNewTokens = Math.max(...items.map(([, e]) => t.encode(e).length)) + 2;
  const replies = await generateText(m, t, items.map(([p]) => p), { maxNewTokens, greedy: true });
  return replies.map((r, i) => r.startsWith(items[i][1]));
}
if (snapshots.length) {
  result.lookup_curve = {};
  for (const step of snapshots) {
    const s = loadModel(join(out, `step${step}`));
    result.lookup_curve[step] = `${(await score(s.model, s.tokenizer, probes.lookup_two)).filter(Boolean).length}/${n}`;
  }
}
const misses = {};
for (const [name, items] of Object.entries(probes)) {
  const maxNewTokens = Math.max(...items.map(([, e]) => tokenizer.encode(e).length)) + 2;
  const replies = await generateText(model, tokenizer, items.map(([p]) => p), { maxNewTokens, greedy: true });
  const ok = replies.map((r, i) => r.startsWith(items[i][1]));
  result[name] = `${ok.filter(Boolean).length}/${items.length}`;
  misses[name] = items.flatMap(([p, e], i) => (ok[i] ? [] : [`${p.trim()} → ${JSON.stringify(replies[i])} (want ${JSON.stringify(e)})`])).slice(0, 2);
}
result.misses = misses;
process.stdout.write(JSON.stringify(result) + '\n');
