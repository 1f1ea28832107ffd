import type { CausalLM } from '../models/causal_lm.js';
import { noGrad } from '../tensor/autograd.js';
import { Rng } from '../util/rng.js';
import type { TokenDataset } from './data.js';

export interface EvalResult {
  train: number;
  val: number;
}

/**
 * Mean loss over `iters` batches of each split. The batches come from a fixed
 * seed, so every evaluation sees the same windows: changes between evals are
 * the model's, not sampling noise — and training's own RNG is left untouched.
 */
export function estimateLoss(model: CausalLM, data: TokenDataset, batchSize: number, iters: number, seed: number): EvalResult {
  const wasTraining = model.training;
  model.eval();
  const result = { train: 0, val: 0 };
  for (const split of ['train', 'val'] as const) {
    const rng = new Rng(seed + (split === 'train' ? 1 : 2));
    let sum = 0;
    for (let i = 0; i < iters; i++) {
      const { x, y } = data.batch(split, batchSize, rng);
      sum += noGrad(() => model.forward(x, [batchSize, data.blockSize], y).loss!.item());
    }
    result[split] = sum / iters;
  }
  model.train(wasTraining);
  return result;
}

/**
 * Mean next-token loss over the WHOLE validation split, every token predicted
 * once: the split cut into consecutive windows of blockSize (the last one
 * shorter), `batchSize` windows per forward pass. Slower than estimateLoss's
 * sample, but it is the number a recipe is judged by (no sampling noise).
 */
export function validationLoss(model: CausalLM, data: TokenDataset, batchSize: number): number {
  const wasTraining = model.training;
  model.eval();
  const val = data.val;
  const T = data.blockSize;
  const predicted = val.length - 1; // every token but the first is a target
  const full = Math.floor(predicted / T);
  let sum = 0;
  const run = (first: number, B: number, t: number): void => {
    const x = new Int32Array(B * t);
    const y = new Int32Array(B * t);
    for (let b = 0; b < B; b++) {
      const at = (first + b) * T;
      x.set(val.subarray(at, at + t), b * t);
      y.set(val.subarray(at + 1, at + 1 + t), b * t);
    }
    // forward's loss is the mean over the B·t positions: weigh it back to a sum.
    sum += noGrad(() => model.forward(x, [B, t], y).loss!.item()) * B * t;
  };
  for (let w = 0; w < full; w += batchSize) run(w, Math.min(batchSize, full - w), T);
  const rest = predicted - full * T;
  if (rest > 0) run(full, 1, rest);
  model.train(wasTraining);
  return sum / predicted;
}
