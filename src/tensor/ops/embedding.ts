import { backend } from '../../backend/index.js';
import { isGradEnabled, record } from '../autograd.js';
import { StoredIds, type TokenIds } from '../stored_ids.js';
import { Tensor, type Shape } from '../tensor.js';

/**
 * Look up one row of `weight` [V, C] per id; the result has shape [...idsShape, C].
 * Ids kept by the backend (StoredIds: a device's argmax picks) are looked up
 * where they are, without a gradient; they were checked by whoever made them
 * (argmaxRows gives indices of the scores' row, which has V entries).
 */
export function embedding(weight: Tensor, ids: TokenIds, idsShape: Shape = [ids.length]): Tensor {
  const [vocab, dim] = weight.shape as [number, number];
  if (ids instanceof StoredIds) {
    if (isGradEnabled() && weight.requiresGrad) throw new Error('embedding: ids kept by the backend are for inference; run it without gradients (noGrad)');
    const out = Tensor.empty([...idsShape, dim]);
    backend().embeddingForwardStored(weight.storage, ids.storage, ids.length, out.storage, dim);
    return out;
  }
  for (const id of ids) {
    if (id < 0 || id >= vocab || !Number.isInteger(id)) throw new Error(`embedding: id ${id} outside table of ${vocab} rows`);
  }
  const out = Tensor.empty([...idsShape, dim]);
  backend().embeddingForward(weight.storage, ids, out.storage, dim);
  return record(out, [weight], 'embedding', () => {
    backend().embeddingBackward(out.gradStorage!, ids, weight.ensureGradStorage(), dim);
  });
}
