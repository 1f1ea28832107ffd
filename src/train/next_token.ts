import type { CausalLM } from '../models/causal_lm.js';
import type { Batch } from './data.js';
import type { Objective } from './step.js';

/**
 * Language modelling, the GPT's objective: the mean cross-entropy of
 * predicting every next token of B windows of `blockSize` tokens (the targets
 * are the inputs shifted by one; see TokenDataset).
 */
export function nextTokenObjective(model: CausalLM, blockSize: number): Objective<Batch> {
  return { loss: ({ x, y }) => model.forward(x, [x.length / blockSize, blockSize], y).loss! };
}
