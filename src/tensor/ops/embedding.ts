import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor, type Shape } from '../tensor.js';

/** Look up one row of `weight` [V, C] per id; the result has shape [...idsShape, C]. */
export function embedding(weight: Tensor, ids: Int32Array, idsShape: Shape = [ids.length]): Tensor {
  const [vocab, dim] = weight.shape as [number, number];
  for (const id of ids) {
    if (id < 0 || id >= vocab || !Number.isInteger(id)) throw new Error(`embedding: id ${id} outside table of ${vocab} rows`);
  }
  const out = Tensor.empty([...idsShape, dim]);
  backend().embeddingForward(weight.storage, ids, out.storage, dim);
  return record(out, [weight], 'embedding', () => {
    backend().embeddingBackward(out.gradStorage!, ids, weight.ensureGradStorage(), dim);
  });
}
