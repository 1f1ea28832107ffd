import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GPT } from '../models/gpt.js';
import { parseGPTConfig } from '../models/gpt_config.js';
import { saveAdapter } from '../io/peft.js';
import { withoutAllocation } from '../nn/init.js';
import { addLoRA, loraLayers, loraParameters } from '../nn/lora.js';
import { AdamW } from '../optim/adamw.js';
import { nextTokenObjective } from '../train/next_token.js';
import { trainStep } from '../train/step.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { BENCH_CONFIGS, median } from './configs.js';
import { DECODE_CONFIGS } from './decode.js';
import type { Row } from './workloads.js';

/** Issue #16's LoRA shape: GPT-2 124M (config G: ctx 256, batch 4), rank 8 on c_attn and c_fc. */
export const LORA_BENCH = { config: 'G', r: 8, alpha: 16, targets: ['c_attn', 'c_fc'] } as const;

/** The two sides compared: fine-tuning every weight, and training LoRA adapters over a frozen base. */
export const LORA_MODES = ['full', 'lora'] as const;
export type LoRAMode = (typeof LORA_MODES)[number];

/**
 * One training step (the trainers' own trainStep: forward, backward, clip,
 * AdamW) on random tokens, for full fine-tuning or LoRA. With LoRA the base
 * is frozen: backward skips every weight gradient of the base (a third of
 * the matrix work), and neither gradients nor AdamW moments exist for its
 * 124M values — the time and the memory this measures. Run in a child
 * process each (cli/bench.ts), so that peak RSS belongs to one mode alone.
 */
export function benchLoRAStep(mode: LoRAMode, steps: number, warmup = 2): Row {
  const c = BENCH_CONFIGS[LORA_BENCH.config]!;
  const cfg = parseGPTConfig(c.model);
  const model = new GPT(cfg, new Rng(1));
  let params = model.namedParameters();
  if (mode === 'lora') {
    addLoRA(model, { r: LORA_BENCH.r, alpha: LORA_BENCH.alpha, targets: [...LORA_BENCH.targets], rng: new Rng(3) });
    params = loraParameters(model);
  }
  const opt = new AdamW(params, { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  const rng = new Rng(2);
  const n = c.batch * cfg.block_size;
  const x = Int32Array.from({ length: n }, () => rng.int(cfg.vocab_size));
  const y = Int32Array.from({ length: n }, () => rng.int(cfg.vocab_size));
  const objective = nextTokenObjective(model, cfg.block_size);
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    trainStep(opt, objective, [{ x, y }], { lr: 1e-3, gradClip: 1 });
    if (i >= warmup) times.push(performance.now() - t0);
  }
  const ms = median(times);
  const trainable = params.reduce((s, [, p]) => s + p.size, 0);
  return { workload: 'lora', mode, config: LORA_BENCH.config, r: LORA_BENCH.r, tokens_per_s: (n / ms) * 1000, step_ms: ms, trainable_params: trainable, params: model.numParameters() };
}

const PYTHON = '/usr/bin/python3';
const TWIN = fileURLToPath(new URL('../../../bench/torch_lora.py', import.meta.url));

/** The PyTorch twin (bench/torch_lora.py, hand-written LoRA) of one mode at one thread count, in its own process. */
export function runTorchLoRA(mode: LoRAMode, threads: number, steps: number): Row {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const r = spawnSync(PYTHON, [TWIN, '--threads', String(threads), '--mode', mode, '--steps', String(steps)], { encoding: 'utf8', env, maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new UserError(`PyTorch LoRA twin failed: ${(r.stderr || '').trim().split('\n').at(-1)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Row;
}

/**
 * `n` LoRA adapters (LORA_BENCH's rank and targets, random A and B) for a
 * GPT of a DECODE_CONFIGS shape, written in PEFT's layout under `root`: the
 * serve benchmark's adapters. Returns their directories.
 */
export function writeBenchAdapters(config: string, root: string, n: number): string[] {
  const shape = DECODE_CONFIGS[config];
  if (!shape) throw new Error(`unknown model shape ${config}`);
  return Array.from({ length: n }, (_, i) => {
    // A base with no weights allocated: adapters only need its layers' shapes.
    const model = withoutAllocation(() => new GPT(parseGPTConfig(shape), new Rng(0)));
    addLoRA(model, { r: LORA_BENCH.r, alpha: LORA_BENCH.alpha, targets: [...LORA_BENCH.targets], rng: new Rng(10 + i) });
    const rng = new Rng(100 + i);
    for (const [, l] of loraLayers(model)) for (let k = 0; k < l.lora_B.weight.size; k++) l.lora_B.weight.data[k] = rng.normal() * 0.01;
    const dir = join(root, `a${i}`);
    saveAdapter(model, dir);
    return dir;
  });
}
