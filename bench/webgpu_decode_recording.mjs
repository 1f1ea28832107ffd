// What a decode token costs the host on the WebGPU backend: the JavaScript time to record one
// token of a GPT with the 124M shape's layout (12 layers, 12 heads), with its widths cut to 64 and
// a vocabulary of 64 so that the GPU's share is negligible on any adapter. No token is read back
// (the recording is what a GPU cannot hide); a sync every 50 tokens keeps the queue short.
// Given other trees, runs this tree and each of them in their own processes, in rounds whose
// order alternates, and prints one JSON line per run and a summary line with the medians.
//
//   node bench/webgpu_decode_recording.mjs [TOKENS] [ROUNDS] [OTHER_TREE ...]
//
// Without a GPU: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json.
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const WARM = 20;
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

if (process.argv[2] === '--child') {
  const [tree, tokens] = [process.argv[3], Number(process.argv[4])];
  const at = (p) => import(pathToFileURL(resolve(tree, 'dist/src', p)).href);
  const { selectBackendAsync } = await at('backend/select.js');
  const { openedWebGpu } = await at('backend/webgpu/index.js');
  const { logitsCached } = await at('generate/cached_forward.js');
  const { KVCache } = await at('generate/kv_cache.js');
  const { GPT } = await at('models/gpt.js');
  const { parseGPTConfig } = await at('models/gpt_config.js');
  const { moveToBackend } = await at('nn/placement.js');
  const { releaseStorage } = await at('tensor/tensor.js');
  const { Rng } = await at('util/rng.js');
  await selectBackendAsync('webgpu');
  const ctx = openedWebGpu();
  const model = new GPT(parseGPTConfig({ n_layer: 12, n_head: 4, n_embd: 64, block_size: 1024, vocab_size: 64, bias: true, dropout: 0 }), new Rng(1)).eval();
  moveToBackend(model);
  const cache = new KVCache(model.config, 1, tokens + 8);
  const ms = [];
  let dispatches = 0;
  for (let i = 0; i < tokens; i++) {
    const d0 = ctx.stats.dispatches;
    const t0 = performance.now();
    const scores = logitsCached(model, Int32Array.of(i % 64), [1, 1], cache);
    ctx.flush();
    ms.push(performance.now() - t0);
    dispatches = ctx.stats.dispatches - d0;
    releaseStorage(scores.storage);
    if (i % 50 === 49) await ctx.sync();
  }
  console.log(JSON.stringify({ tree, record_ms: Number(med(ms.slice(WARM)).toFixed(3)), dispatches, tokens }));
  process.exit(0);
}

const tokens = Number(process.argv[2] ?? 400);
const rounds = Number(process.argv[3] ?? 5);
const here = resolve(fileURLToPath(new URL('..', import.meta.url)));
const trees = [here, ...process.argv.slice(4).map((t) => resolve(t))];
const runs = Object.fromEntries(trees.map((t) => [t, []]));
for (let r = 0; r < rounds; r++) {
  for (const tree of r % 2 ? [...trees].reverse() : trees) {
    const out = execFileSync(process.execPath, [fileURLToPath(import.meta.url), '--child', tree, String(tokens)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    const row = JSON.parse(out.trim().split('\n').pop());
    runs[tree].push(row.record_ms);
    console.log(JSON.stringify({ round: r, ...row }));
  }
}
console.log(JSON.stringify({ summary: 'median record_ms per token', ...Object.fromEntries(trees.map((t) => [t, med(runs[t])])) }));
