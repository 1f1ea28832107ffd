import { backend } from '../backend/index.js';
import type { RaggedKvSequence } from '../backend/backend.js';
import { attention, type AttentionOptions } from '../tensor/ops/attention.js';
import { noGrad } from '../tensor/autograd.js';
import { Tensor, copyStorage, viewStorage } from '../tensor/tensor.js';
import type { KVLayer } from './kv_cache.js';

/**
 * Attention for generation, given to the model's forward as its `attend`:
 * store the new keys and values in the cache, then let each new query attend
 * to every cached position of its row up to itself. q is [B, Tq, nHead·D],
 * k and v [B, Tq, nKvHead·D] for the Tq new positions. Inference only (no
 * graph). A first pass without padding is plain causal attention and uses the
 * fused kernel; later passes (and padded prompts) read the cache, and the
 * backend stores the new keys and values as part of the same call.
 */
export function cachedAttention(q: Tensor, k: Tensor, v: Tensor, kv: KVLayer, o: AttentionOptions): Tensor {
  const [B, Tq, C] = q.shape as [number, number, number];
  if (isFirstUnpaddedPass(kv)) {
    storeKeysValues(k, v, kv);
    return noGrad(() => attention(q, k, v, { nHead: o.nHead, nKvHead: o.nKvHead, causal: true }));
  }
  checkRoom(kv, Tq);
  const headDim = C / o.nHead;
  // attentionCached writes every element: no clear first (on a GPU, a clear ends the compute pass).
  const out = Tensor.empty(q.shape);
  const dims = { B, Tq, past: kv.past, cap: kv.cap, nHead: o.nHead, nKvHead: o.nKvHead ?? o.nHead, headDim, scale: 1 / Math.sqrt(headDim) };
  backend().attentionCached(q.storage, kv.k, kv.v, out.storage, kv.start, dims, { k: k.storage, v: v.storage });
  return out;
}

function checkRoom(kv: KVLayer, Tq: number): void {
  if (kv.past + Tq > kv.cap) throw new Error(`KV cache overflow: ${kv.past} + ${Tq} positions > capacity ${kv.cap}`);
}

/**
 * The same for a continuous batch (generate/batch_step.ts): q, k, v are
 * [1, rows, ·], sequence s at rows offsets[s] … offsets[s+1] − 1, each with
 * its own single-row cache. One backend call stores the new keys and values
 * and runs every sequence's heads together (they share the threads). A
 * newcomer's first pass is plain causal attention, as above, so batched and
 * single-request outputs stay identical.
 */
export function raggedCachedAttention(q: Tensor, k: Tensor, v: Tensor, offsets: Int32Array, layers: readonly KVLayer[], o: AttentionOptions): Tensor {
  const C = q.shape[2]!;
  const Ck = k.shape[2]!;
  // Every row is written: a newcomer's by its first pass, the others by the backend.
  const out = Tensor.empty(q.shape);
  const rows = (t: Tensor, s: number) => {
    const w = t.shape[2]!;
    return new Tensor(viewStorage(t.storage, offsets[s]! * w, (offsets[s + 1]! - offsets[s]!) * w), [1, offsets[s + 1]! - offsets[s]!, w]);
  };
  const cached: RaggedKvSequence[] = [];
  layers.forEach((layer, s) => {
    const [offset, Tq] = [offsets[s]!, offsets[s + 1]! - offsets[s]!];
    if (isFirstUnpaddedPass(layer)) return copyStorage(cachedAttention(rows(q, s), rows(k, s), rows(v, s), layer, o).storage, 0, out.storage, offset * C, Tq * C);
    checkRoom(layer, Tq);
    cached.push({ k: layer.k, v: layer.v, cap: layer.cap, past: layer.past, start: layer.start[0]!, offset, Tq });
  });
  if (cached.length > 0) {
    const nKvHead = o.nKvHead ?? o.nHead;
    const headDim = Ck / nKvHead;
    // The backend stores each sequence's new keys and values (its rows of k and v) as part of the call.
    backend().attentionCachedRagged(q.storage, out.storage, cached, { nHead: o.nHead, nKvHead, headDim, scale: 1 / Math.sqrt(headDim) }, { k: k.storage, v: v.storage });
  }
  return out;
}

/**
 * Write the new keys and values k, v [B, Tq, W] into the cache after its
 * `past` filled slots (on a device backend, copies recorded on the device).
 */
export function storeKeysValues(k: Tensor, v: Tensor, kv: KVLayer): void {
  const [B, Tq, W] = k.shape as [number, number, number];
  checkRoom(kv, Tq);
  for (let b = 0; b < B; b++) {
    copyStorage(k.storage, b * Tq * W, kv.k, (b * kv.cap + kv.past) * W, Tq * W);
    copyStorage(v.storage, b * Tq * W, kv.v, (b * kv.cap + kv.past) * W, Tq * W);
  }
}

/** A cache's first pass without left padding: plain causal attention over the new positions. */
export function isFirstUnpaddedPass(kv: KVLayer): boolean {
  return kv.past === 0 && kv.start.every((s) => s === 0);
}
