/** Token sequences laid out as one [B, T] batch, with the flags that mark padding. */
export interface PaddedBatch {
  ids: Int32Array;
  /** B·T flags, 1 where a position is padding. */
  padding: Uint8Array;
  B: number;
  T: number;
}

/**
 * Right-pad sequences to the longest one (cut to maxLen). Padding positions
 * hold id 0: the mask keeps them out of attention and pooling, so their id
 * never matters.
 */
export function padBatch(seqs: readonly Int32Array[], maxLen: number): PaddedBatch {
  const B = seqs.length;
  const T = Math.max(1, Math.min(maxLen, Math.max(0, ...seqs.map((s) => s.length))));
  const ids = new Int32Array(B * T);
  const padding = new Uint8Array(B * T).fill(1);
  seqs.forEach((s, b) => {
    const n = Math.min(s.length, T);
    ids.set(s.subarray(0, n), b * T);
    padding.fill(0, b * T, b * T + n);
  });
  return { ids, padding, B, T };
}
