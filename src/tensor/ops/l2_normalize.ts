import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor, allocStorage, releaseStorage } from '../tensor.js';

/**
 * Scale each row (last axis) to unit length: y = x / ‖x‖ (a row below 1e-12
 * is divided by 1e-12, so a zero vector stays finite). Cosine similarity is
 * then a plain dot product, and a Matryoshka prefix normalised on its own is
 * a valid embedding by itself. Backward (backend.l2NormalizeBackward):
 * dx = (dy − y·(y·dy)) / ‖x‖, the gradient without its component along y.
 */
export function l2Normalize(x: Tensor): Tensor {
  const D = x.shape[x.rank - 1]!;
  const rows = x.size / D;
  const out = Tensor.empty(x.shape);
  const norms = allocStorage(rows, false);
  const be = backend();
  be.l2NormalizeForward(x.storage, out.storage, norms, rows, D);
  return record(out, [x], 'l2Normalize', () => {
    be.l2NormalizeBackward(out.storage, norms, out.gradStorage!, x.ensureGradStorage(), rows, D);
    releaseStorage(norms);
  });
}
