// Greedy decoding of a Llama on the WebGPU backend with the projections that read one input
// joined into one product each (q·k·v, gate·up: nn/joined_linear.ts) and not
// (setJoinProjections(false): each its own product), in interleaved rounds in one process. The
// model has SmolLM2-135M's layout (30 layers, 9 query heads sharing 3 key/value heads, SwiGLU)
// at the given width (default 64, vocabulary 64: a step is then mostly dispatches, what joining
// saves; 576 with a vocabulary of 49 152 is the real model's size). Prints one JSON line per round
// and setting (ms per token: the median time of stepAsync after the first 8; dispatches per token;
// a digest of the tokens, which must be the same both ways), then the medians.
//
//   node bench/webgpu_joined_ab.mjs [TOKENS] [ROUNDS] [WIDTH] [VOCAB]
//
// Without a GPU: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json.
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = resolve(fileURLToPath(new URL('..', import.meta.url)));
const at = (p) => import(pathToFileURL(resolve(here, 'dist/src', p)).href);
const { selectBackendAsync } = await at('backend/select.js');
const { openedWebGpu } = await at('backend/webgpu/index.js');
const { BatchDecoder } = await at('generate/engine.js');
const { Llama } = await at('models/llama.js');
const { parseLlamaConfig } = await at('models/llama_config.js');
const { setJoinProjections } = await at('nn/joined_linear.js');
const { moveToBackend } = await at('nn/placement.js');
const { Rng } = await at('util/rng.js');
const { tokensDigest } = await at('bench/webgpu.js');

const tokens = Number(process.argv[2] ?? 64);
const rounds = Number(process.argv[3] ?? 3);
const width = Number(process.argv[4] ?? 64);
const vocab = Number(process.argv[5] ?? 64);
const WARM = 8;
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

await selectBackendAsync('webgpu');
const headDim = width / 9 >= 16 && width % 9 === 0 ? width / 9 : 16;
const config = parseLlamaConfig({
  n_layer: 30, n_embd: width, n_head: 9, n_kv_head: 3, head_dim: headDim, intermediate_size: Math.round((width * 8) / 3),
  vocab_size: vocab, block_size: 2048, tie_word_embeddings: true,
});
const model = new Llama(config, new Rng(1)).eval();
moveToBackend(model);
const prompt = Int32Array.from({ length: 16 }, (_, i) => (i * 7) % vocab);

async function run(join) {
  setJoinProjections(join);
  const dec = new BatchDecoder(model, [prompt], { maxNewTokens: tokens, greedy: true });
  const ids = [];
  const ms = [];
  const d0 = openedWebGpu().stats.dispatches;
  while (!dec.finished) {
    const t0 = performance.now();
    const [id] = await dec.stepAsync();
    ms.push(performance.now() - t0);
    if (id !== null) ids.push(id);
  }
  const dispatches = (openedWebGpu().stats.dispatches - d0) / tokens;
  return { joined: join, ms_per_token: Number(med(ms.slice(WARM)).toFixed(3)), dispatches_per_token: Number(dispatches.toFixed(1)), tokens: tokensDigest(ids) };
}

const all = { true: [], false: [] };
for (let r = 0; r < rounds; r++) {
  for (const join of r % 2 ? [false, true] : [true, false]) {
    const row = await run(join);
    all[join].push(row.ms_per_token);
    console.log(JSON.stringify({ workload: 'decode-joined', round: r, width, vocab, ...row }));
  }
}
const [j, s] = [med(all.true), med(all.false)];
console.log(JSON.stringify({ summary: 'median ms per token', width, vocab, joined: j, separate: s, speedup: Number((s / j).toFixed(3)) }));
process.exit(0);
