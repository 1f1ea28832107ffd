import { dequantizeRow, type QuantizedMatrix } from '../../backend/quantized_matrix.js';
import { Tensor, type Shape } from '../tensor.js';

/**
 * Look up one row of a block-quantized table [V, C] per id, dequantized as it
 * is read: the table stays as stored (a GGUF token embedding), and only the
 * rows a batch asks for become floats. Inference only: it records no gradient.
 */
export function embeddingQuantized(table: QuantizedMatrix, ids: Int32Array, idsShape: Shape = [ids.length]): Tensor {
  const { rows: vocab, cols: dim } = table;
  const out = Tensor.empty([...idsShape, dim]);
  ids.forEach((id, i) => {
    if (id < 0 || id >= vocab || !Number.isInteger(id)) throw new Error(`embedding: id ${id} outside table of ${vocab} rows`);
    dequantizeRow(table, id, out.data, i * dim);
  });
  return out;
}
