// Greedy decoding on the WebGPU backend with and without a draft (generate/speculative_device.ts:
// each round queued whole — the draft's steps fed their own picks on the device, the target's
// verifying pass fed the drafts there — and read back once), in interleaved rounds in one process.
// The target is a GPT of the 124M shape (12 layers, width 768, vocabulary 50 257) with random
// weights, or narrower (WIDTH, VOCAB); the draft is its own first DRAFT_LAYERS blocks under its
// embeddings, final norm and head (weights shared: a layer-skip draft), so it is cheap and agrees
// with the target often without training. Without a draft the decoder queues its steps 4 ahead of
// their reads (ATTN_DECODE_AHEAD, the default): the row to beat. Prints one JSON line per round and
// setting (tokens per second over the run; for the draft its acceptance rate and tokens per round;
// a digest of the tokens, which must be the same both ways), then the medians.
//
//   node bench/webgpu_speculative_ab.mjs [TOKENS] [ROUNDS] [K] [DRAFT_LAYERS] [WIDTH] [VOCAB]
//
// Without a GPU: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json (times there say nothing).
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = resolve(fileURLToPath(new URL('..', import.meta.url)));
const at = (p) => import(pathToFileURL(resolve(here, 'dist/src', p)).href);
const { selectBackendAsync } = await at('backend/select.js');
const { BatchDecoder } = await at('generate/engine.js');
const { SpeculativeDecoder, SpeculativeStats } = await at('generate/speculative.js');
const { GPT } = await at('models/gpt.js');
const { parseGPTConfig } = await at('models/gpt_config.js');
const { moveToBackend } = await at('nn/placement.js');
const { Rng } = await at('util/rng.js');
const { tokensDigest } = await at('bench/webgpu.js');

const tokens = Number(process.argv[2] ?? 128);
const rounds = Number(process.argv[3] ?? 3);
const k = Number(process.argv[4] ?? 4);
const draftLayers = Number(process.argv[5] ?? 2);
const width = Number(process.argv[6] ?? 768);
const vocab = Number(process.argv[7] ?? 50257);
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

await selectBackendAsync('webgpu');
const config = { n_layer: 12, n_head: width / 64, n_embd: width, block_size: 1024, vocab_size: vocab, bias: true, dropout: 0 };
const target = new GPT(parseGPTConfig(config), new Rng(1)).eval();
const draft = new GPT(parseGPTConfig({ ...config, n_layer: draftLayers }), new Rng(2)).eval();
// The draft's weights are the target's, block for block: the first draftLayers blocks, the embeddings, the final norm and the head.
const own = new Map(target.namedParameters());
for (const [name, p] of draft.namedParameters()) p.data.set(own.get(name).data);
moveToBackend(target);
moveToBackend(draft);
const prompt = Int32Array.from({ length: 16 }, (_, i) => (i * 7919) % vocab);

async function run(withDraft) {
  const stats = new SpeculativeStats();
  const dec = withDraft
    ? new SpeculativeDecoder(target, [prompt], { maxNewTokens: tokens, greedy: true, draft, k, stats })
    : new BatchDecoder(target, [prompt], { maxNewTokens: tokens, greedy: true });
  const ids = [];
  const t0 = performance.now();
  while (!dec.finished) {
    const [id] = await dec.stepAsync();
    if (id !== null && id !== undefined) ids.push(id);
  }
  const s = (performance.now() - t0) / 1000;
  return {
    draft: withDraft ? `${draftLayers} layers, k ${k}` : 'none (4 steps queued ahead)',
    tokens_per_s: Number((ids.length / s).toFixed(1)),
    ...(withDraft ? { acceptance_rate: Number(stats.acceptanceRate.toFixed(3)), tokens_per_round: Number(stats.tokensPerTargetPass.toFixed(2)) } : {}),
    tokens: tokensDigest(ids),
  };
}

await run(false); // compile the pipelines
await run(true);
const all = { true: [], false: [] };
for (let r = 0; r < rounds; r++) {
  for (const withDraft of r % 2 ? [true, false] : [false, true]) {
    const row = await run(withDraft);
    all[withDraft].push(row.tokens_per_s);
    console.log(JSON.stringify({ workload: 'decode-speculative', round: r, width, vocab, ...row }));
  }
}
const [plain, spec] = [med(all.false), med(all.true)];
console.log(JSON.stringify({ summary: 'median tokens per second', width, vocab, k, draft_layers: draftLayers, plain, speculative: spec, speedup: Number((spec / plain).toFixed(3)) }));
process.exit(0);
