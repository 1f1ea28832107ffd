/** Row lookup: out[r] = weight[ids[r]]. */
export function embeddingForward(weight: Float32Array, ids: Int32Array, out: Float32Array, dim: number): void {
  for (let r = 0; r < ids.length; r++) {
    const src = ids[r]! * dim;
    out.set(weight.subarray(src, src + dim), r * dim);
  }
}

/** Scatter-add: a token that appears several times collects every gradient. */
export function embeddingBackward(dOut: Float32Array, ids: Int32Array, dWeight: Float32Array, dim: number): void {
  for (let r = 0; r < ids.length; r++) {
    const dst = ids[r]! * dim;
    const src = r * dim;
    for (let j = 0; j < dim; j++) dWeight[dst + j] = dWeight[dst + j]! + dOut[src + j]!;
  }
}
