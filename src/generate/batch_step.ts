import type { GPT } from '../models/gpt.js';
import type { Linear } from '../nn/linear.js';
import { cachedAttention, type KVLayer } from '../tensor/ops/attention.js';
import { add, gelu } from '../tensor/ops/elementwise.js';
import { linearInt8 } from '../tensor/ops/linear_int8.js';
import { split } from '../tensor/ops/shape.js';
import { noGrad } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import type { KVCache } from './kv_cache.js';
import { skinnyLinear } from './skinny_linear.js';

/**
 * One decoding step for sequences that do not share a clock (continuous
 * batching): row b feeds one new token at its own position and attends
 * through its own single-row KV cache, so rows can join and leave the batch
 * between steps. Everything that works on each position alone — embeddings,
 * LayerNorms, the projections, the MLP and the output head — runs on all
 * rows at once, because there the cost is reading the weights and one
 * [B, C] product reads them once for every row. Only attention, whose
 * cost is each row's own cache, runs row by row.
 *
 * Equivalent, row for row, to `model.forwardCached(ids[b], [1, 1], caches[b])`
 * (dropout is skipped: this is inference).
 * Returns [B, vocab] scores for each row's next token.
 */
export function batchStep(model: GPT, ids: Int32Array, caches: readonly KVCache[]): Float32Array {
  const B = ids.length;
  if (caches.length !== B) throw new Error(`batchStep: ${B} tokens but ${caches.length} caches`);
  for (const c of caches) {
    if (c.batch !== 1) throw new Error('batchStep: every sequence needs its own single-row KV cache');
    if (c.free < 1) throw new Error('batchStep: a KV cache is full');
  }
  return noGrad(() => {
    const positions = Int32Array.from(caches, (c) => c.position(0, c.length));
    let x = add(model.wte.forward(ids, [B, 1]), model.wpe.forward(positions, [B, 1]));
    model.h.forEach((block, i) => {
      const attn = block.attn;
      const [q, k, v] = split(project(attn.c_attn, block.ln_1.forward(x)), 3, -1) as [Tensor, Tensor, Tensor];
      const y = attentionPerRow(q, k, v, attn.nHead, caches.map((c) => c.layers[i]!));
      x = add(x, project(attn.c_proj, y));
      const mlp = block.mlp;
      x = add(x, project(mlp.c_proj, gelu(project(mlp.c_fc, block.ln_2.forward(x)))));
    });
    for (const c of caches) c.advance(1);
    x = model.ln_f.forward(x);
    // The tied output head, int8 when the model is quantized (as GPT.head).
    const logits = model.headInt8 ? linearInt8(x, model.headInt8) : skinnyLinear(x, model.wte.weight, null);
    return logits.data;
  });
}

/** A Linear layer on the batch's rows: its int8 kernel when quantized, else the fastest fp32 product for few rows. */
function project(lin: Linear, x: Tensor): Tensor {
  return lin.int8 ? lin.forward(x) : skinnyLinear(x, lin.weight, lin.bias);
}

/** q, k, v [B, 1, C]: each row attends to its own cache (B=1 views, no copies in). */
function attentionPerRow(q: Tensor, k: Tensor, v: Tensor, nHead: number, layers: readonly KVLayer[]): Tensor {
  const [B, , C] = q.shape as [number, number, number];
  const out = Tensor.zeros([B, 1, C]);
  const row = (t: Tensor, b: number) => new Tensor(t.data.subarray(b * C, (b + 1) * C), [1, 1, C]);
  for (let b = 0; b < B; b++) {
    out.data.set(cachedAttention(row(q, b), row(k, b), row(v, b), nHead, layers[b]!).data, b * C);
  }
  return out;
}
