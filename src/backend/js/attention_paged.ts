import type { FreshKeysValues, PagedKvDims, PagedKvSequence } from '../backend.js';

/**
 * attentionCached (attention_cached.ts) with the cache read through block
 * tables: kPool and vPool are one layer's [blocks, blockTokens,
 * nKvHead·headDim] arrays of a KV block pool. Query t of a sequence sees its
 * slots 0 … past + t. Given `fresh`, each new row's key and value are
 * stored in its slot first (storeFreshPaged). The reference for a native
 * and a WGSL twin.
 */
export function attentionPaged(q: Float32Array, out: Float32Array, kPool: Float32Array, vPool: Float32Array, seqs: readonly PagedKvSequence[], d: PagedKvDims, fresh: FreshKeysValues<Float32Array> | null = null): void {
  if (fresh) storeFreshPaged(kPool, vPool, seqs, d, fresh);
  const { nHead, nKvHead, headDim, scale, blockTokens } = d;
  const C = nHead * headDim;
  const Ckv = nKvHead * headDim;
  const group = nHead / nKvHead;
  for (const s of seqs) {
    const slot = (j: number) => (s.table[Math.floor(j / blockTokens)]! * blockTokens + (j % blockTokens)) * Ckv;
    const w = new Float64Array(s.past + s.Tq);
    for (let t = 0; t < s.Tq; t++) {
      const last = s.past + t; // inclusive
      for (let h = 0; h < nHead; h++) {
        const qo = (s.offset + t) * C + h * headDim;
        const g = Math.floor(h / group) * headDim;
        let max = -Infinity;
        for (let j = 0; j <= last; j++) {
          const ko = slot(j) + g;
          let dot = 0;
          for (let e = 0; e < headDim; e++) dot += q[qo + e]! * kPool[ko + e]!;
          w[j] = dot * scale;
          if (w[j]! > max) max = w[j]!;
        }
        let sum = 0;
        for (let j = 0; j <= last; j++) sum += w[j] = Math.exp(w[j]! - max);
        for (let e = 0; e < headDim; e++) {
          let acc = 0;
          for (let j = 0; j <= last; j++) acc += w[j]! * vPool[slot(j) + g + e]!;
          out[qo + e] = acc / sum;
        }
      }
    }
  }
}

/** Row t of each sequence's new keys and values (fresh, rows as q's) into its slot past + t, through its block table. */
export function storeFreshPaged(kPool: Float32Array, vPool: Float32Array, seqs: readonly PagedKvSequence[], d: PagedKvDims, fresh: FreshKeysValues<Float32Array>): void {
  const W = d.nKvHead * d.headDim;
  for (const s of seqs) {
    for (let t = 0; t < s.Tq; t++) {
      const j = s.past + t;
      const at = (s.table[Math.floor(j / d.blockTokens)]! * d.blockTokens + (j % d.blockTokens)) * W;
      const from = (s.offset + t) * W;
      kPool.set(fresh.k.subarray(from, from + W), at);
      vPool.set(fresh.v.subarray(from, from + W), at);
    }
  }
}
