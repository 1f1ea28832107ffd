import { backend } from '../../backend/index.js';
import { dequantizeRow, type QuantizedMatrix } from '../../backend/quantized_matrix.js';
import { StoredIds, type TokenIds } from '../stored_ids.js';
import { Tensor, uploadForPass, type Shape } from '../tensor.js';

/**
 * Look up one row of a block-quantized table [V, C] per id, dequantized as it
 * is read: the table stays as stored (a GGUF token embedding), and only the
 * rows a batch asks for become floats. Inference only: it records no gradient.
 * The rows are dequantized on the host (a few per decoding step); on a device
 * backend they then go up in one upload.
 */
export function embeddingQuantized(table: QuantizedMatrix, ids: TokenIds, idsShape: Shape = [ids.length]): Tensor {
  const { rows: vocab, cols: dim } = table;
  if (ids instanceof StoredIds) {
    // Ids a device picked (decoding queued ahead): the rows are dequantized where the ids are.
    const out = Tensor.empty([...idsShape, dim]);
    backend().embeddingQuantizedStored(table, ids.storage, ids.length, out.storage);
    return out;
  }
  const rows = new Float32Array(ids.length * dim);
  ids.forEach((id, i) => {
    if (id < 0 || id >= vocab || !Number.isInteger(id)) throw new Error(`embedding: id ${id} outside table of ${vocab} rows`);
    dequantizeRow(table, id, rows, i * dim);
  });
  return new Tensor(uploadForPass(rows), [...idsShape, dim]);
}
