import { backend } from '../backend/index.js';
import type { CausalLM } from '../models/causal_lm.js';
import { noGrad } from '../tensor/autograd.js';
import { withScratch } from '../tensor/buffer_pool.js';
import { reshape } from '../tensor/ops/shape.js';
import type { TokenIds } from '../tensor/stored_ids.js';
import { allocStorage, readStorage, releaseStorage, withDeviceScratch, type Tensor } from '../tensor/tensor.js';
import { cachedAttention } from './cached_attention.js';
import { fusedDecodeStep } from './fused_decode.js';
import type { KVCache } from './kv_cache.js';

/**
 * Generation with a KV cache: run T new tokens per row (the prompt, then one
 * at a time) at the cache's next slots, through the model's one forward pass
 * with an `attend` that stores each layer's new keys and values and reads the
 * earlier ones from the cache. Returns [B, vocab] scores for the token after
 * each row's last new position. One new token of a one-row cache takes the
 * fused path where it applies (fused_decode.ts): the same scores, each layer
 * one backend call.
 */
export function forwardCached(model: CausalLM, ids: TokenIds, [B, T]: [number, number], cache: KVCache, into?: Float32Array): Tensor {
  if (ids.length !== B * T) throw new Error(`expected ${B}×${T} ids, got ${ids.length}`);
  if (B !== cache.batch) throw new Error(`${B} rows for a KV cache of ${cache.batch}`);
  const fused = B === 1 && T === 1 && ids instanceof Int32Array ? fusedDecodeStep(model, ids[0]!, cache, into) : null;
  if (fused) return fused;
  const positions = new Int32Array(B * T);
  for (let b = 0; b < B; b++) for (let t = 0; t < T; t++) positions[b * T + t] = cache.position(b, cache.length + t);
  const { logits } = model.forward(ids, [B, T], undefined, {
    positions,
    last: true,
    attend: (layer, q, k, v, o) => cachedAttention(q, k, v, cache.layers[layer]!, o),
  });
  cache.advance(T);
  return reshape(logits, [B, model.config.vocab_size]);
}

/**
 * forwardCached's scores alone, from a pass without gradients whose
 * intermediate arrays are all recycled when it ends (buffer_pool.ts's
 * withScratch): decoding token after token then reuses the same buffers
 * instead of handing the garbage collector a layer's worth of new arrays per
 * token. The scores are the caller's (they are not recycled). With `into`
 * (vocab floats), a one-row one-token step on the fused path writes its scores
 * there and returns `into` itself, for a caller that is done with the last
 * scores before it asks for the next (a decode loop); other passes return a
 * new array as before.
 */
export function scoresCached(model: CausalLM, ids: Int32Array, shape: [number, number], cache: KVCache, into?: Float32Array): Float32Array {
  return noGrad(() => withScratch(() => forwardCached(model, ids, shape, cache, into).data));
}

/**
 * forwardCached's scores as a tensor where the backend keeps them (device
 * storage on webgpu), from a pass whose every other intermediate is handed
 * back to the pools when it ends: a decode step then allocates nothing new.
 * The caller owns the scores' storage (releaseStorage when done).
 */
export function logitsCached(model: CausalLM, ids: TokenIds, shape: [number, number], cache: KVCache): Tensor {
  return noGrad(() => withScratch(() => withDeviceScratch(() => forwardCached(model, ids, shape, cache), (t) => [t.storage])));
}

/**
 * The argmax of every row of scores [rows, vocab], computed where the scores
 * are (backend.argmaxRows): greedy decoding on a device reads back one
 * number per row instead of the rows themselves.
 */
export async function argmaxRowsOf(scores: Tensor): Promise<Int32Array> {
  const [rows, vocab] = scores.shape as [number, number];
  const out = allocStorage(rows, false);
  backend().argmaxRows(scores.storage, rows, vocab, out);
  const ids = Int32Array.from(await readStorage(out));
  releaseStorage(out);
  return ids;
}
