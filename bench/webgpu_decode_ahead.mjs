// Greedy decoding on the WebGPU backend through BatchDecoder.stepAsync, with its steps queued
// 0, 1, 2 or 3 deep ahead of their reads (ATTN_DECODE_AHEAD; generate/decode_ahead.ts), in
// interleaved rounds in one process. The model is a GPT with the 124M shape's layout (12 layers)
// cut to widths of 64 and a vocabulary of 64, so that on any adapter a step is mostly the host's
// recording and the read's round trip: what queuing ahead can hide. Prints one JSON line per round
// and depth (ms per token: the median time from one stepAsync call to the next after the first 8,
// and a digest of the tokens, which must be the same at every depth), then the medians.
//
//   node bench/webgpu_decode_ahead.mjs [TOKENS] [ROUNDS] [DEPTHS]
//
// Without a GPU: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json.
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = resolve(fileURLToPath(new URL('..', import.meta.url)));
const at = (p) => import(pathToFileURL(resolve(here, 'dist/src', p)).href);
const { selectBackendAsync } = await at('backend/select.js');
const { setDecodeAhead } = await at('generate/decode_ahead.js');
const { BatchDecoder } = await at('generate/engine.js');
const { GPT } = await at('models/gpt.js');
const { parseGPTConfig } = await at('models/gpt_config.js');
const { moveToBackend } = await at('nn/placement.js');
const { Rng } = await at('util/rng.js');
const { tokensDigest } = await at('bench/webgpu.js');

const tokens = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 3);
const depths = (process.argv[4] ?? '0,1,2,3').split(',').map(Number);
const WARM = 8;
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

await selectBackendAsync('webgpu');
const model = new GPT(parseGPTConfig({ n_layer: 12, n_head: 4, n_embd: 64, block_size: 1024, vocab_size: 64, bias: true, dropout: 0 }), new Rng(1)).eval();
moveToBackend(model);
const prompt = Int32Array.from({ length: 16 }, (_, i) => (i * 7) % 64);

async function run(depth) {
  setDecodeAhead(depth);
  const dec = new BatchDecoder(model, [prompt], { maxNewTokens: tokens, greedy: true });
  const ids = [];
  const ms = [];
  while (!dec.finished) {
    const t0 = performance.now();
    const [id] = await dec.stepAsync();
    ms.push(performance.now() - t0);
    if (id !== null) ids.push(id);
  }
  return { depth, ms_per_token: Number(med(ms.slice(WARM)).toFixed(3)), tokens: tokensDigest(ids) };
}

const all = Object.fromEntries(depths.map((d) => [d, []]));
for (let r = 0; r < rounds; r++) {
  for (const d of r % 2 ? [...depths].reverse() : depths) {
    const row = await run(d);
    all[d].push(row.ms_per_token);
    console.log(JSON.stringify({ round: r, ...row }));
  }
}
console.log(JSON.stringify({ summary: 'median ms per token', ...Object.fromEntries(depths.map((d) => [`ahead_${d}`, med(all[d])])) }));
process.exit(0);
