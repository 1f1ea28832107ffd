import { forwardCached } from '../generate/cached_forward.js';
import { KVCache } from '../generate/kv_cache.js';
import { argmax } from '../generate/sampling.js';
import { GPT } from '../models/gpt.js';
import { parseGPTConfig, type GPTConfigInput } from '../models/gpt_config.js';
import { quantize } from '../nn/quantized_linear.js';
import { noGrad } from '../tensor/autograd.js';
import { Rng } from '../util/rng.js';
import { BENCH_CONFIGS, median } from './configs.js';
import type { Row } from './workloads.js';

/** Inference shapes: GPT-2 124M (random weights: speed does not depend on their values) and config S. */
export const DECODE_CONFIGS: Record<string, GPTConfigInput> = {
  '124M': { n_layer: 12, n_head: 12, n_embd: 768, block_size: 1024, vocab_size: 50257, bias: true, dropout: 0 },
  S: BENCH_CONFIGS.S!.model,
};

/** "124M", "S", "124M-int8": the model shape and whether its weights are int8. */
function buildModel(arg: string): { model: GPT; int8: boolean; config: string } {
  const [config, q] = arg.split('-') as [string, string | undefined];
  const shape = DECODE_CONFIGS[config];
  if (!shape || (q !== undefined && q !== 'int8')) throw new Error(`unknown decode config ${arg}`);
  const model = new GPT(parseGPTConfig(shape), new Rng(1)).eval();
  if (q === 'int8') quantize(model);
  return { model, int8: q === 'int8', config };
}

const PROMPT = 16;

/** What `attn bench --workloads decode,prefill` runs. */
export const DECODE_JOBS: Array<[string, string]> = [
  ['decode', '124M'], ['decode', '124M-int8'], ['decode', 'S'], ['decode', 'S-int8'], ['prefill', '124M'],
];

/**
 * Batch-1 greedy decoding with the KV cache after a 16-token prompt: the
 * median time of one step (forward of one token + argmax), over `steps`
 * steps after the prefill and two warm-up steps, in a pass after three
 * untimed ones.
 */
export function benchDecode(arg: string, steps: number): Row {
  const { model, int8, config } = buildModel(arg);
  const rng = new Rng(2);
  const V = model.config.vocab_size;
  const n = Math.min(steps + 2, model.config.block_size - PROMPT);
  const cache = new KVCache(model.config, 1, PROMPT + n);
  const prompt = Int32Array.from({ length: PROMPT }, () => rng.int(V));
  const times: number[] = [];
  // The first passes are untimed: they warm the JIT (one pass of a small model is
  // too short for V8 to finish optimising) and the allocator, so the figure is a
  // server's steady state rather than a fresh process's first tokens.
  for (const timed of [false, false, false, true]) {
    cache.reset();
    noGrad(() => {
      let next = argmax(forwardCached(model, prompt, [1, PROMPT], cache).data);
      for (let i = 0; i < n; i++) {
        const t0 = performance.now();
        next = argmax(forwardCached(model, Int32Array.of(next), [1, 1], cache).data);
        if (timed && i >= 2) times.push(performance.now() - t0);
      }
    });
  }
  const ms = median(times);
  return { workload: 'decode', config, dtype: int8 ? 'int8' : 'fp32', tokens_per_s: 1000 / ms, step_ms: ms, prompt: PROMPT };
}

/** One 256-token prompt through the model into an empty KV cache (prefill), median of `steps`. */
export function benchPrefill(arg: string, steps: number, T = 256): Row {
  const { model, int8, config } = buildModel(arg);
  const rng = new Rng(3);
  const prompt = Int32Array.from({ length: T }, () => rng.int(model.config.vocab_size));
  const cache = new KVCache(model.config, 1, T);
  const times: number[] = [];
  noGrad(() => {
    for (let i = 0; i < steps + 1; i++) {
      cache.reset();
      const t0 = performance.now();
      forwardCached(model, prompt, [1, T], cache);
      if (i >= 1) times.push(performance.now() - t0);
    }
  });
  const ms = median(times);
  return { workload: 'prefill', config, dtype: int8 ? 'int8' : 'fp32', tokens_per_s: (T * 1000) / ms, step_ms: ms, prompt: T };
}
