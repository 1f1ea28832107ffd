// A continuous batch's decode step on the WebGPU backend with each sequence's keys and values in
// a paged pool (generate/paged_kv/: one attentionPaged dispatch a layer for every sequence, new
// keys stored by the kernel) and in contiguous caches of its own (attentionCachedRagged: one
// dispatch a layer per sequence), in interleaved rounds in one process: SEQS sequences of a GPT
// (12 layers, WIDTH, vocabulary VOCAB, random weights), each prefilled with a PROMPT-token prompt,
// then STEPS batched greedy steps (batchForwardOnDevice, each step's picks read back as the
// scheduler reads them). Prints one JSON line per round and layout (dispatches and ms per step:
// the median step after the first 2; a digest of the tokens, which must be the same both ways),
// then the medians.
//
//   node bench/webgpu_paged_ab.mjs [SEQS] [STEPS] [ROUNDS] [PROMPT] [WIDTH] [VOCAB]
//
// Without a GPU: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json (its times say nothing).
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = resolve(fileURLToPath(new URL('..', import.meta.url)));
const at = (p) => import(pathToFileURL(resolve(here, 'dist/src', p)).href);
const { selectBackendAsync } = await at('backend/select.js');
const { openedWebGpu } = await at('backend/webgpu/index.js');
const { batchForwardOnDevice } = await at('generate/batch_step.js');
const { argmaxRowsOf } = await at('generate/cached_forward.js');
const { KVCache } = await at('generate/kv_cache.js');
const { PagedKV } = await at('generate/paged_kv/paged_kv.js');
const { GPT } = await at('models/gpt.js');
const { parseGPTConfig } = await at('models/gpt_config.js');
const { moveToBackend } = await at('nn/placement.js');
const { releaseStorage } = await at('tensor/tensor.js');
const { Rng } = await at('util/rng.js');
const { tokensDigest } = await at('bench/webgpu.js');

const seqs = Number(process.argv[2] ?? 16);
const steps = Number(process.argv[3] ?? 16);
const rounds = Number(process.argv[4] ?? 3);
const promptLen = Number(process.argv[5] ?? 64);
const width = Number(process.argv[6] ?? 768);
const vocab = Number(process.argv[7] ?? 50257);
const WARM = 2;
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

await selectBackendAsync('webgpu');
const config = parseGPTConfig({ n_layer: 12, n_head: width / 64, n_embd: width, block_size: 1024, vocab_size: vocab, bias: true, dropout: 0 });
const model = new GPT(config, new Rng(1)).eval();
moveToBackend(model);
const prompts = Array.from({ length: seqs }, (_, s) => Int32Array.from({ length: promptLen }, (_, i) => (s * 131 + i * 7919) % vocab));

async function run(paged) {
  const pool = paged ? new PagedKV(config, { prefixSharing: false }, seqs) : null;
  const caches = prompts.map(() => (pool ? pool.open([], 0) : new KVCache(config, 1, promptLen + steps + 1)));
  const stats = openedWebGpu().stats;
  let chunks = prompts;
  const ids = [];
  const ms = [];
  const dispatches = [];
  for (let step = 0; step <= steps; step++) {
    const [t0, d0] = [performance.now(), stats.dispatches];
    const scores = batchForwardOnDevice(model, chunks, caches);
    const picks = await argmaxRowsOf(scores);
    releaseStorage(scores.storage);
    if (step > WARM) {
      ms.push(performance.now() - t0);
      dispatches.push(stats.dispatches - d0);
    }
    ids.push(...picks);
    chunks = Array.from(picks, (id) => Int32Array.of(id));
  }
  for (const c of caches) if (pool) c.free();
  return { layout: paged ? 'paged' : 'contiguous', ms_per_step: Number(med(ms).toFixed(3)), dispatches_per_step: med(dispatches), tokens: tokensDigest(ids) };
}

await run(true); // compile the pipelines
await run(false);
const all = { paged: [], contiguous: [] };
for (let r = 0; r < rounds; r++) {
  for (const paged of r % 2 ? [false, true] : [true, false]) {
    const row = await run(paged);
    all[row.layout].push(row.ms_per_step);
    console.log(JSON.stringify({ workload: 'serve-step-paged', round: r, seqs, width, vocab, ...row }));
  }
}
const [p, c] = [med(all.paged), med(all.contiguous)];
console.log(JSON.stringify({ summary: 'median ms per batched decode step', seqs, width, vocab, paged: p, contiguous: c, speedup: Number((c / p).toFixed(3)) }));
process.exit(0);
