import type { GPT } from '../models/gpt.js';
import { noGrad } from '../tensor/autograd.js';
import { Rng } from '../util/rng.js';
import { sampleToken, type SamplingOptions } from './sampling.js';

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  seed?: number;
}

/**
 * Produce tokens one at a time, each conditioned on everything before it.
 * The model only sees its last block_size tokens: the sliding context window
 * of the article. (Each step recomputes the window; a KV cache avoids that.)
 */
export function* generate(model: GPT, prompt: ArrayLike<number>, opts: GenerateOptions): Generator<number> {
  if (prompt.length === 0) throw new Error('generation needs at least one prompt token');
  const rng = new Rng(opts.seed ?? 1337);
  const ids = Array.from(prompt);
  const window = model.config.block_size;
  const wasTraining = model.training;
  model.eval();
  try {
    for (let i = 0; i < opts.maxNewTokens; i++) {
      const ctx = Int32Array.from(ids.slice(-window));
      const logits = noGrad(() => model.nextTokenLogits(ctx, [1, ctx.length]));
      const next = sampleToken(logits.data, opts, rng);
      ids.push(next);
      yield next;
    }
  } finally {
    model.train(wasTraining);
  }
}
