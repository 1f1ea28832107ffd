// A small GPT's training steps on the WebGPU backend two ways, in interleaved rounds of 10 steps
// in one process: each step waiting for its loss and gradient norm before its update is recorded
// (trainStepAsync, as `attn bench`'s first train row), and as `attn train` runs them (9 steps queued
// with clipping on the device, queueTrainStep, then one that reads). Prints each round's ms per step
// and what the host recorded (dispatches, compute passes, copies, uploads, reads, submits), then the
// medians. On SwiftShader the "GPU" is this machine's cores, so the wall times say little; the
// counts are what a GPU pays for.
//
//   node bench/webgpu_train_queued.mjs [ROUNDS]
//
// Without a GPU: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json.
import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const here = resolve(fileURLToPath(new URL('..', import.meta.url)));
const at = (p) => import(pathToFileURL(resolve(here, 'dist/src', p)).href);
const { selectBackendAsync } = await at('backend/select.js');
const { openedWebGpu } = await at('backend/webgpu/index.js');
const { GPT } = await at('models/gpt.js');
const { parseGPTConfig } = await at('models/gpt_config.js');
const { moveToBackend } = await at('nn/placement.js');
const { AdamW } = await at('optim/adamw.js');
const { nextTokenObjective } = await at('train/next_token.js');
const { queueTrainStep, trainStepAsync } = await at('train/step.js');
const { Rng } = await at('util/rng.js');

const rounds = Number(process.argv[2] ?? 4);
const COUNTS = ['dispatches', 'passes', 'copies', 'writeBuffers', 'reads', 'submits'];
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

await selectBackendAsync('webgpu');
const ctx = openedWebGpu();
const T = 32;
const cfg = parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 32, block_size: T, vocab_size: 65, bias: true, dropout: 0 });
const model = new GPT(cfg, new Rng(1));
moveToBackend(model);
const opt = new AdamW(model.namedParameters(), { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
const rng = new Rng(2);
const n = 4 * T;
const batch = { x: Int32Array.from({ length: n }, () => rng.int(65)), y: Int32Array.from({ length: n }, () => rng.int(65)) };
const objective = nextTokenObjective(model, T);
const s = { lr: 1e-3, gradClip: 1 }; // clipping on, as attn train's default
for (let i = 0; i < 3; i++) await trainStepAsync(opt, objective, [batch], s);

const ms = { wait: [], queued: [] };
for (let r = 0; r < rounds; r++) {
  for (const mode of r % 2 ? ['queued', 'wait'] : ['wait', 'queued']) {
    const before = { ...ctx.stats };
    const t0 = performance.now();
    if (mode === 'wait') for (let i = 0; i < 10; i++) await trainStepAsync(opt, objective, [batch], s);
    else {
      for (let i = 1; i < 10; i++) queueTrainStep(opt, objective, [batch], s);
      await trainStepAsync(opt, objective, [batch], s);
    }
    const step = (performance.now() - t0) / 10;
    ms[mode].push(step);
    const counts = Object.fromEntries(COUNTS.map((k) => [k, ctx.stats[k] - before[k]]));
    console.log(JSON.stringify({ round: r, mode, ms_per_step: Number(step.toFixed(1)), per_10_steps: counts }));
  }
}
console.log(JSON.stringify({ summary: 'median ms per step', wait: Number(med(ms.wait).toFixed(1)), queued: Number(med(ms.queued).toFixed(1)) }));
process.exit(0);
