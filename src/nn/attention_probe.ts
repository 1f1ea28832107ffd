import { attention, attentionWeights, type AttentionOptions } from '../tensor/ops/attention.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * Keeps one attention's queries and keys from the last pass it watched, so
 * that its weights can be shown (a translation's or a caption's
 * cross-attention map). Kept rather than the weights: the weights come from
 * the js reference's loops over host values, which a device backend has
 * only once q and k are read back — `queriesKeys()` names the tensors to
 * read, `weights(values)` computes from what was read. On a host, `weights()`
 * reads them directly. The weights are computed once per pass: `weights`
 * lets go of q and k (on a device their buffers go back to the pool when the
 * pass's reads are done, so a second call would read freed memory).
 */
export class AttentionProbe {
  private last: { q: Tensor; k: Tensor; o: AttentionOptions } | null = null;

  /** An attention op (the `attend` hook of a layer) that also keeps its queries and keys. */
  readonly attend = (q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions): Tensor => {
    this.last = { q, k, o };
    return attention(q, k, v, o);
  };

  /** The kept queries and keys, or null before the first pass. */
  queriesKeys(): [Tensor, Tensor] | null {
    return this.last && [this.last.q, this.last.k];
  }

  /** The weights [B, heads, Tq, Tk] from the kept q and k (their host values, or the values given for them); null before a pass or after its weights were taken. */
  weights(values?: readonly [Float32Array, Float32Array]): Float32Array | null {
    const c = this.last;
    if (!c) return null;
    this.last = null;
    const [q, k] = values ? [new Tensor(values[0], c.q.shape), new Tensor(values[1], c.k.shape)] : [c.q, c.k];
    return attentionWeights(q, k, c.o);
  }
}
