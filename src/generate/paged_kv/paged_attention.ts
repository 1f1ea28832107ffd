import { backend } from '../../backend/index.js';
import type { PagedKvSequence } from '../../backend/backend.js';
import { attention, type AttentionOptions } from '../../tensor/ops/attention.js';
import { noGrad } from '../../tensor/autograd.js';
import { copyStorage, Tensor, viewStorage } from '../../tensor/tensor.js';
import type { PagedSequence } from './paged_sequence.js';

/**
 * raggedCachedAttention (cached_attention.ts) over a paged KV cache, given to
 * the model's forward as its `attend` for layer `layer`: q, k, v are [1, rows,
 * ·], sequence s at rows offsets[s] … offsets[s+1] − 1. Each new token's keys
 * and values are written into its sequence's next slots — wherever its block
 * table puts them (the blocks were reserved before the pass) — and then one
 * backend call lets every sequence's queries attend to its slots through the
 * tables. A sequence with nothing cached yet runs plain causal attention on
 * its own rows, as the contiguous path does, so both give the same numbers.
 * On a device the kernel itself stores the new keys and values and attends
 * for every sequence, new ones included (`fresh`).
 */
export function pagedRaggedAttention(q: Tensor, k: Tensor, v: Tensor, offsets: Int32Array, seqs: readonly PagedSequence[], layer: number, o: AttentionOptions): Tensor {
  const C = q.shape[2]!;
  const W = k.shape[2]!;
  const out = backend().device ? Tensor.empty(q.shape) : Tensor.zeros(q.shape); // a device's kernel writes every row
  const rows = (t: Tensor, s: number) => {
    const w = t.shape[2]!;
    return new Tensor(viewStorage(t.storage, offsets[s]! * w, (offsets[s + 1]! - offsets[s]!) * w), [1, offsets[s + 1]! - offsets[s]!, w]);
  };
  const pool = seqs[0]?.pool;
  const nKvHead = o.nKvHead ?? o.nHead;
  const d = { nHead: o.nHead, nKvHead, headDim: W / nKvHead, scale: 1 / Math.sqrt(W / nKvHead), blockTokens: pool?.blockTokens ?? 1 };
  if (backend().device) {
    // On a device one kernel stores every new row's key and value in its slot and attends, for every
    // sequence at once (kernels/attention_paged.ts): no copies, no separate pass for a new sequence.
    if (seqs.some((seq) => seq.pool !== pool)) throw new Error('pagedRaggedAttention: every sequence must hold blocks of the same pool');
    const all = seqs.map((seq, s) => ({ table: seq.table, past: seq.length, offset: offsets[s]!, Tq: offsets[s + 1]! - offsets[s]! }));
    backend().attentionPaged(q.storage, out.storage, pool!.k[layer]!, pool!.v[layer]!, all, d, { k: k.storage, v: v.storage });
    return out;
  }
  const paged: PagedKvSequence[] = [];
  seqs.forEach((seq, s) => {
    const [offset, Tq] = [offsets[s]!, offsets[s + 1]! - offsets[s]!];
    if (seq.pool !== pool) throw new Error('pagedRaggedAttention: every sequence must hold blocks of the same pool');
    // Slots inside one block are adjacent: copy each block's run of new rows at once (a prompt's
    // thousand rows are then some sixty copies per layer instead of a thousand).
    for (let t = 0; t < Tq; ) {
      const slot = seq.length + t;
      const run = Math.min(Tq - t, pool!.blockTokens - (slot % pool!.blockTokens));
      const at = seq.slotOffset(slot);
      copyStorage(k.storage, (offset + t) * W, pool!.k[layer]!, at, run * W);
      copyStorage(v.storage, (offset + t) * W, pool!.v[layer]!, at, run * W);
      t += run;
    }
    if (seq.length === 0) {
      const own = noGrad(() => attention(rows(q, s), rows(k, s), rows(v, s), { nHead: o.nHead, nKvHead: o.nKvHead, causal: true }));
      return copyStorage(own.storage, 0, out.storage, offset * C, Tq * C);
    }
    paged.push({ table: seq.table, past: seq.length, offset, Tq });
  });
  if (paged.length > 0) backend().attentionPaged(q.storage, out.storage, pool!.k[layer]!, pool!.v[layer]!, paged, d);
  return out;
}
