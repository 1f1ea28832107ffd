import { backend } from '../backend/index.js';
import type { RaggedKvSequence } from '../backend/backend.js';
import type { GPT } from '../models/gpt.js';
import { cachedAttention, isFirstUnpaddedPass, storeKeysValues, type KVLayer } from '../tensor/ops/attention.js';
import { add, gelu } from '../tensor/ops/elementwise.js';
import { linear } from '../tensor/ops/linear.js';
import { linearInt8 } from '../tensor/ops/linear_int8.js';
import { rope } from '../tensor/ops/rope.js';
import { split } from '../tensor/ops/shape.js';
import { noGrad } from '../tensor/autograd.js';
import { withScratch } from '../tensor/buffer_pool.js';
import { Tensor } from '../tensor/tensor.js';
import type { KVCache } from './kv_cache.js';

/**
 * One forward pass for sequences that do not share a clock (continuous
 * batching). Sequence s feeds `chunks[s]` new tokens — one while it decodes,
 * its whole prompt when it has just joined — at its own positions, through
 * its own single-row KV cache, so sequences join and leave between steps and
 * a newcomer's prefill rides along with everyone else's decode step instead
 * of stalling it. Everything that works on each position alone — embeddings,
 * LayerNorms, the projections, the MLP — runs on all the new tokens at once
 * as one [1, rows, C] batch, because there the cost is reading the weights,
 * and one product reads them once for every row (the native backend's
 * skinny products, native/src/gemv_impl.inc, up to 256 rows). Only attention, whose cost
 * is each sequence's own cache, runs sequence by sequence.
 *
 * Equivalent, sequence for sequence, to `model.forwardCached(chunks[s], [1, n], caches[s])`
 * (dropout is skipped: this is inference). Returns [sequences, vocab]
 * scores for the token after each sequence's last new token.
 */
export function batchForward(model: GPT, chunks: readonly Int32Array[], caches: readonly KVCache[]): Float32Array {
  const S = chunks.length;
  if (caches.length !== S) throw new Error(`batchForward: ${S} sequences but ${caches.length} caches`);
  chunks.forEach((chunk, s) => {
    const c = caches[s]!;
    if (c.batch !== 1) throw new Error('batchForward: every sequence needs its own single-row KV cache');
    if (chunk.length === 0 || c.free < chunk.length) throw new Error(`batchForward: sequence ${s} feeds ${chunk.length} tokens into a cache with ${c.free} free slots`);
  });
  const offsets = rowOffsets(chunks);
  const rows = offsets[S]!;
  // Every intermediate array of the pass is recycled at its end (only the scores are returned).
  return noGrad(() => withScratch(() => {
    const ids = new Int32Array(rows);
    const positions = new Int32Array(rows);
    chunks.forEach((chunk, s) => {
      ids.set(chunk, offsets[s]);
      for (let t = 0; t < chunk.length; t++) positions[offsets[s]! + t] = caches[s]!.position(0, caches[s]!.length + t);
    });
    let x = model.embed(ids, [1, rows], positions);
    model.h.forEach((block, i) => {
      const attn = block.attn;
      let [q, k, v] = split(attn.c_attn.forward(block.ln_1.forward(x)), 3, -1) as [Tensor, Tensor, Tensor];
      if (attn.rope) [q, k] = [rope(q, attn.nHead, positions), rope(k, attn.nHead, positions)];
      const y = attentionPerSequence(q, k, v, attn.nHead, offsets, caches.map((c) => c.layers[i]!));
      x = add(x, attn.c_proj.forward(y));
      const mlp = block.mlp;
      x = add(x, mlp.c_proj.forward(gelu(mlp.c_fc.forward(block.ln_2.forward(x)))));
    });
    chunks.forEach((chunk, s) => caches[s]!.advance(chunk.length));
    x = model.ln_f.forward(lastRows(x, offsets));
    // The tied output head, int8 when the model is quantized (as GPT.head).
    const logits = model.headInt8 ? linearInt8(x, model.headInt8) : linear(x, model.wte.weight);
    return logits.data;
  }));
}

/** One decoding step: one new token per sequence. */
export function batchStep(model: GPT, ids: Int32Array, caches: readonly KVCache[]): Float32Array {
  return batchForward(model, Array.from(ids, (id) => Int32Array.of(id)), caches);
}

/** offsets[s] = the first row of sequence s; offsets[S] = all rows. */
function rowOffsets(chunks: readonly Int32Array[]): Int32Array {
  const offsets = new Int32Array(chunks.length + 1);
  chunks.forEach((c, s) => (offsets[s + 1] = offsets[s]! + c.length));
  return offsets;
}

/**
 * q, k, v [1, rows, C]: each sequence's rows attend to its own cache. The new
 * keys and values are stored first; then one backend call runs every
 * sequence's heads together (they share the threads). A newcomer's first
 * pass is plain causal attention and takes the fused kernel, as in
 * cachedAttention, so batched and single-request outputs stay identical.
 */
function attentionPerSequence(q: Tensor, k: Tensor, v: Tensor, nHead: number, offsets: Int32Array, layers: readonly KVLayer[]): Tensor {
  const C = q.shape[2]!;
  const headDim = C / nHead;
  const nKvHead = k.shape[2]! / headDim; // grouped-query caches hold fewer key/value heads
  const out = Tensor.zeros(q.shape);
  const rows = (t: Tensor, s: number) => {
    const w = t.shape[2]!;
    return new Tensor(t.data.subarray(offsets[s]! * w, offsets[s + 1]! * w), [1, offsets[s + 1]! - offsets[s]!, w]);
  };
  const cached: RaggedKvSequence[] = [];
  layers.forEach((layer, s) => {
    const [offset, Tq] = [offsets[s]!, offsets[s + 1]! - offsets[s]!];
    if (isFirstUnpaddedPass(layer)) return out.data.set(cachedAttention(rows(q, s), rows(k, s), rows(v, s), layer, { nHead, nKvHead }).data, offset * C);
    storeKeysValues(rows(k, s), rows(v, s), layer);
    cached.push({ k: layer.k, v: layer.v, cap: layer.cap, past: layer.past, start: layer.start[0]!, offset, Tq });
  });
  if (cached.length > 0) backend().attentionCachedRagged(q.data, out.data, cached, { nHead, nKvHead, headDim, scale: 1 / Math.sqrt(headDim) });
  return out;
}

/** [S, C]: the hidden state of each sequence's last new token (only those are scored). */
function lastRows(x: Tensor, offsets: Int32Array): Tensor {
  const C = x.shape[2]!;
  const S = offsets.length - 1;
  if (offsets[S] === S) return new Tensor(x.data, [S, C]); // one token each: already in place
  const out = Tensor.zeros([S, C]);
  for (let s = 0; s < S; s++) out.data.set(x.data.subarray((offsets[s + 1]! - 1) * C, offsets[s + 1]! * C), s * C);
  return out;
}
