// What a training step costs the host on the WebGPU backend: the JavaScript time to record one
// step (forward, backward, the clipped gradient norm and AdamW: queueTrainStep) of a GPT with
// config M's or G's layout (layers and heads), its widths cut to 8 a head, a context of 16 and a
// vocabulary of 64, so that the GPU's share is negligible on any adapter. No loss is read back
// (the recording is what a GPU must hide behind its work). Each step is recorded while the device
// is idle: a sync after each, outside the timing, and the children record a whole step before
// submitting (ATTN_WEBGPU_SUBMIT_EVERY=0, unless set), since on SwiftShader the device's work
// would take the recording's cores. After each sync the child collects garbage (node
// --expose-gc): Dawn's binding leaves garbage on every tick of a wait, and a wait of SwiftShader's
// length would otherwise put a Mark-Compact into the next step's recording. Given other trees, runs this tree and each of them in their own processes, in rounds
// whose order alternates, and prints one JSON line per run and a summary line with the medians.
//
//   node bench/webgpu_train_recording.mjs [M|G] [STEPS] [ROUNDS] [OTHER_TREE ...]
//
// Without a GPU: VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json.
import { execFileSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const WARM = 10;
const LAYOUTS = { M: { n_layer: 6, n_head: 6 }, G: { n_layer: 12, n_head: 12 } };
const med = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

if (process.argv[2] === '--child') {
  const [tree, layout, steps] = [process.argv[3], process.argv[4], Number(process.argv[5])];
  const at = (p) => import(pathToFileURL(resolve(tree, 'dist/src', p)).href);
  const { selectBackendAsync } = await at('backend/select.js');
  const { openedWebGpu } = await at('backend/webgpu/index.js');
  const { GPT } = await at('models/gpt.js');
  const { parseGPTConfig } = await at('models/gpt_config.js');
  const { moveToBackend } = await at('nn/placement.js');
  const { AdamW } = await at('optim/adamw.js');
  const { nextTokenObjective } = await at('train/next_token.js');
  const { queueTrainStep } = await at('train/step.js');
  const { Rng } = await at('util/rng.js');
  await selectBackendAsync('webgpu');
  const ctx = openedWebGpu();
  const { n_layer, n_head } = LAYOUTS[layout];
  const cfg = parseGPTConfig({ n_layer, n_head, n_embd: 8 * n_head, block_size: 16, vocab_size: 64, bias: true, dropout: 0 });
  const model = new GPT(cfg, new Rng(1));
  moveToBackend(model);
  const opt = new AdamW(model.namedParameters(), { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  const objective = nextTokenObjective(model, cfg.block_size);
  const rng = new Rng(2);
  const n = 2 * cfg.block_size;
  const batch = { x: Int32Array.from({ length: n }, () => rng.int(64)), y: Int32Array.from({ length: n }, () => rng.int(64)) };
  const ms = [];
  let dispatches = 0;
  for (let i = 0; i < steps; i++) {
    const d0 = ctx.stats.dispatches;
    const t0 = performance.now();
    queueTrainStep(opt, objective, [batch], { lr: 1e-3, gradClip: 1 });
    ms.push(performance.now() - t0);
    dispatches = ctx.stats.dispatches - d0;
    await ctx.sync();
    globalThis.gc();
  }
  console.log(JSON.stringify({ tree, layout, record_ms: Number(med(ms.slice(WARM)).toFixed(3)), dispatches, steps }));
  process.exit(0);
}

const layout = process.argv[2] ?? 'M';
if (!LAYOUTS[layout]) throw new Error(`layout ${layout}: M or G`);
const steps = Number(process.argv[3] ?? 60);
const rounds = Number(process.argv[4] ?? 5);
const here = resolve(fileURLToPath(new URL('..', import.meta.url)));
const trees = [here, ...process.argv.slice(5).map((t) => resolve(t))];
const runs = Object.fromEntries(trees.map((t) => [t, []]));
for (let r = 0; r < rounds; r++) {
  for (const tree of r % 2 ? [...trees].reverse() : trees) {
    const env = { ATTN_WEBGPU_SUBMIT_EVERY: '0', ...process.env };
    const out = execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--child', tree, layout, String(steps)], { encoding: 'utf8', env, stdio: ['ignore', 'pipe', 'ignore'] });
    const row = JSON.parse(out.trim().split('\n').pop());
    runs[tree].push(row.record_ms);
    console.log(JSON.stringify({ round: r, ...row }));
  }
}
console.log(JSON.stringify({ summary: `median record_ms per step (${layout} layout)`, ...Object.fromEntries(trees.map((t) => [t, med(runs[t])])) }));
