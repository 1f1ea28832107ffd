import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

/** Softmax over the last axis: turns scores into positive weights that sum to 1. */
export function softmax(x: Tensor): Tensor {
  const cols = x.shape[x.rank - 1]!;
  const rows = x.size / cols;
  const out = Tensor.empty(x.shape);
  backend().softmaxForward(x.storage, out.storage, rows, cols);
  return record(out, [x], 'softmax', () => {
    backend().softmaxBackward(out.storage, out.gradStorage!, x.ensureGradStorage(), rows, cols);
  });
}
