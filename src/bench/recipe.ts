import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { perplexity } from '../eval/perplexity.js';
import { UserError } from '../util/errors.js';
import { loadGPT } from '../io/model_dir.js';
import { parseTrainOptions } from '../train/options.js';
import { train } from '../train/trainer.js';
import { readTextFile } from '../io/read_text.js';
import type { Row } from './workloads.js';

const PYTHON = '/usr/bin/python3';
const SCRIPT = fileURLToPath(new URL('../../../bench/torch_recipe.py', import.meta.url));

/**
 * nanoGPT's shakespeare-char CPU recipe, which is `attn train`'s default:
 * 2000 steps from scratch with one seed. Reports the wall time of the whole
 * run (evaluations and checkpoints included), the final 20-batch estimate of
 * the validation loss that nanoGPT prints, and the loss over the whole
 * validation split, which has no sampling noise.
 */
export function benchRecipe(textPath: string, seed: number, overrides: { maxIters?: number; evalInterval?: number; precision?: 'fp32' | 'bf16' } = {}): Row {
  const text = readTextFile(textPath);
  const out = mkdtempSync(join(tmpdir(), 'attn-recipe-'));
  try {
    const t0 = performance.now();
    const summary = train({ text, dataPath: textPath, options: parseTrainOptions({ seed, ...overrides }), out });
    const seconds = (performance.now() - t0) / 1000;
    const { model, tokenizer } = loadGPT(out, 'attn bench');
    const ids = tokenizer!.encode(text);
    const val = ids.subarray(Math.floor(ids.length * 0.9)); // attn train's split
    const full = perplexity(model, val, { batchSize: 16 }).loss;
    return { workload: 'recipe', config: 'shakespeare-char', seed, precision: overrides.precision ?? 'fp32', val_estimate: summary.val_loss, train_estimate: summary.train_loss, val_full: full, seconds, tokens_per_s: summary.tokens_per_s };
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}

/** The same recipe in PyTorch (bench/torch_recipe.py), at `threads` threads. */
export function runTorchRecipe(textPath: string, seed: number, threads: number, iters = 2000): Row {
  const env = { ...process.env, OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads), MKL_NUM_THREADS: String(threads) };
  const r = spawnSync(PYTHON, [SCRIPT, '--data', textPath, '--seed', String(seed), '--threads', String(threads), '--iters', String(iters)], { encoding: 'utf8', env, maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new UserError(`PyTorch recipe failed: ${(r.stderr || '').trim().split('\n').at(-1)}`);
  return { ...(JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Row), impl: 'pytorch', precision: 'fp32' };
}

const minutes = (s: number): string => `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;

export function describeRecipe(r: Row): string {
  const who = r.impl === 'attn' ? `attn ${r.precision ?? 'fp32'}, ${r.backend}, ${r.threads} thread${r.threads === 1 ? '' : 's'}` : `pytorch, ${r.threads} thread${r.threads === 1 ? '' : 's'}`;
  return `recipe seed ${String(r.seed).padEnd(6)} val ${Number(r.val_estimate).toFixed(4)} (20 batches), ${Number(r.val_full).toFixed(4)} (whole split), ${minutes(Number(r.seconds))} (${who})`;
}
