import type { GPT } from '../models/gpt.js';
import { noGrad } from '../tensor/autograd.js';
import { KVCache } from './kv_cache.js';

/**
 * Prefill several prompts in one pass, each into its own single-row KV cache
 * (continuous batching keeps one cache per sequence). The prompts run
 * together left-padded, as the batch engine does — one product per weight
 * matrix for all their tokens instead of one per prompt — into a scratch
 * cache whose rows are then copied into the sequences' caches. Positions and
 * the padding mask come from the scratch cache's `start`, so each row's keys,
 * values and logits are those of its prompt alone.
 *
 * Returns [n, vocab] scores for the token after each prompt.
 */
export function batchPrefill(model: GPT, prompts: readonly Int32Array[], caches: readonly KVCache[]): Float32Array {
  const n = prompts.length;
  if (n === 0 || caches.length !== n) throw new Error(`batchPrefill: ${n} prompts but ${caches.length} caches`);
  const T = Math.max(...prompts.map((p) => p.length));
  caches.forEach((c, b) => {
    if (c.batch !== 1 || c.length !== 0 || c.capacity < prompts[b]!.length) throw new Error('batchPrefill: each prompt needs an empty single-row cache that fits it');
  });
  if (n === 1) return noGrad(() => model.forwardCached(prompts[0]!, [1, T], caches[0]!)).data;
  const scratch = new KVCache(model.config, n, T);
  const ids = new Int32Array(n * T); // padding is token 0, never attended to
  prompts.forEach((p, b) => ids.set(p, b * T + T - p.length));
  scratch.reset(prompts.map((p) => T - p.length));
  const logits = noGrad(() => model.forwardCached(ids, [n, T], scratch)).data;
  const C = model.config.n_embd;
  caches.forEach((cache, b) => {
    const from = (b * T + T - prompts[b]!.length) * C;
    const to = (b + 1) * T * C;
    scratch.layers.forEach((l, i) => {
      cache.layers[i]!.k.set(l.k.subarray(from, to), 0);
      cache.layers[i]!.v.set(l.v.subarray(from, to), 0);
    });
    cache.advance(prompts[b]!.length);
  });
  return logits;
}
