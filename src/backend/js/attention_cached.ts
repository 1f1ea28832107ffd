import type { FreshKeysValues, KvAttentionDims, RaggedKvDims, RaggedKvSequence } from '../backend.js';

/** Store the new positions' keys and values in the caches at slots past … past + Tq − 1 of each row. */
export function storeFresh(kCache: Float32Array, vCache: Float32Array, fresh: FreshKeysValues<Float32Array>, d: KvAttentionDims): void {
  const n = d.Tq * d.nKvHead * d.headDim;
  for (let b = 0; b < d.B; b++) {
    const at = (b * d.cap + d.past) * d.nKvHead * d.headDim;
    kCache.set(fresh.k.subarray(b * n, (b + 1) * n), at);
    vCache.set(fresh.v.subarray(b * n, (b + 1) * n), at);
  }
}

/**
 * Attention of new queries against a KV cache, one query at a time: the
 * reference for the native kernel. q and out are [B, Tq, nHead·headDim];
 * kCache and vCache are [B, cap, nKvHead·headDim] (heads side by side, as
 * everywhere; query head h reads cache head h / (nHead/nKvHead), so a
 * grouped-query cache is nHead/nKvHead times smaller). Query t of row b
 * sits at cache slot past + t and sees slots start[b] … past + t: causal, and
 * blind to the left padding before start[b]. A query that sees nothing (a pad
 * position itself) outputs zeros. `fresh`: the new positions' keys and
 * values, stored in the caches first.
 */
export function attentionCached(
  q: Float32Array, kCache: Float32Array, vCache: Float32Array, out: Float32Array, start: Int32Array, d: KvAttentionDims, fresh: FreshKeysValues<Float32Array> | null = null,
): void {
  if (fresh) storeFresh(kCache, vCache, fresh, d);
  const { B, Tq, past, cap, nHead, nKvHead, headDim, scale } = d;
  const C = nHead * headDim;
  const Ckv = nKvHead * headDim;
  const group = nHead / nKvHead;
  const w = new Float64Array(past + Tq);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < Tq; t++) {
      const first = start[b]!;
      const last = past + t; // inclusive
      for (let h = 0; h < nHead; h++) {
        const qo = (b * Tq + t) * C + h * headDim;
        const g = Math.floor(h / group) * headDim; // this head's keys and values in a cache row
        let max = -Infinity;
        for (let j = first; j <= last; j++) {
          const ko = (b * cap + j) * Ckv + g;
          let s = 0;
          for (let e = 0; e < headDim; e++) s += q[qo + e]! * kCache[ko + e]!;
          w[j] = s * scale;
          if (w[j]! > max) max = w[j]!;
        }
        let sum = 0;
        for (let j = first; j <= last; j++) sum += w[j] = Math.exp(w[j]! - max);
        for (let e = 0; e < headDim; e++) {
          let acc = 0;
          for (let j = first; j <= last; j++) acc += w[j]! * vCache[(b * cap + j) * Ckv + g + e]!;
          out[qo + e] = sum > 0 ? acc / sum : 0;
        }
      }
    }
  }
}

/** Each sequence's new keys and values (its rows of `fresh`) into its cache at slots past … past + Tq − 1. */
export function storeFreshRagged(seqs: readonly RaggedKvSequence<Float32Array>[], d: RaggedKvDims, fresh: FreshKeysValues<Float32Array>): void {
  const W = d.nKvHead * d.headDim;
  for (const s of seqs) {
    const rows = (x: Float32Array) => x.subarray(s.offset * W, (s.offset + s.Tq) * W);
    storeFresh(s.k, s.v, { k: rows(fresh.k), v: rows(fresh.v) }, { B: 1, Tq: s.Tq, past: s.past, cap: s.cap, ...d });
  }
}

/** Several sequences, each with its own single-row cache: attentionCached on each one's rows. */
export function attentionCachedRagged(q: Float32Array, out: Float32Array, seqs: readonly RaggedKvSequence<Float32Array>[], d: RaggedKvDims, fresh: FreshKeysValues<Float32Array> | null = null): void {
  if (fresh) storeFreshRagged(seqs, d, fresh);
  const C = d.nHead * d.headDim;
  for (const s of seqs) {
    const rows = (a: Float32Array) => a.subarray(s.offset * C, (s.offset + s.Tq) * C);
    attentionCached(rows(q), s.k, s.v, rows(out), Int32Array.of(s.start), { B: 1, Tq: s.Tq, past: s.past, cap: s.cap, ...d });
  }
}
