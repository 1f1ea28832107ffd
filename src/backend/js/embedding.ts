import { dequantizeRow, type QuantizedMatrix } from '../quantized_matrix.js';

/** Row lookup: out[r] = weight[ids[r]]. */
export function embeddingForward(weight: Float32Array, ids: Int32Array, out: Float32Array, dim: number): void {
  for (let r = 0; r < ids.length; r++) {
    const src = ids[r]! * dim;
    out.set(weight.subarray(src, src + dim), r * dim);
  }
}

/** Row lookup with the ids as floats (argmaxRows' picks): out[r] = weight[ids[r]] for r < n. */
export function embeddingForwardStored(weight: Float32Array, ids: Float32Array, n: number, out: Float32Array, dim: number): void {
  const rows = weight.length / dim;
  for (let r = 0; r < n; r++) {
    const id = ids[r]!;
    if (!(Number.isInteger(id) && id >= 0 && id < rows)) throw new Error(`embedding: id ${id} outside table of ${rows} rows`);
    out.set(weight.subarray(id * dim, id * dim + dim), r * dim);
  }
}

/** embeddingForwardStored for a block-quantized table: each looked-up row dequantized (quantized_matrix.ts). */
export function embeddingQuantizedStored(table: QuantizedMatrix, ids: Float32Array, n: number, out: Float32Array): void {
  for (let r = 0; r < n; r++) {
    const id = ids[r]!;
    if (!(Number.isInteger(id) && id >= 0 && id < table.rows)) throw new Error(`embedding: id ${id} outside table of ${table.rows} rows`);
    dequantizeRow(table, id, out, r * table.cols);
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
