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
