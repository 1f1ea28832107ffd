import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor, allocStorage, releaseStorage } from '../tensor.js';

/**
 * Max over positions: x [B, T, C] → [B, C], each channel the largest value
 * any position holds. PointNet's symmetric function: the result does not
 * depend on the order of the T points, so a set of points embeds as a set.
 * The gradient flows only to the position that won each channel (the max
 * is a switch: the others did not affect the output); the backend keeps the
 * winners where it keeps values (backend.maxPoolForward).
 */
export function maxPool(x: Tensor): Tensor {
  if (x.rank !== 3) throw new Error(`maxPool expects [B, T, C], got [${x.shape}]`);
  const [B, T, C] = x.shape as [number, number, number];
  if (T === 0) throw new Error('maxPool over zero positions');
  const out = Tensor.empty([B, C]);
  const winner = allocStorage(B * C, false);
  const be = backend();
  be.maxPoolForward(x.storage, out.storage, winner, B, T, C);
  return record(out, [x], 'maxPool', () => {
    be.maxPoolBackward(out.gradStorage!, winner, x.ensureGradStorage(), B, T, C);
    releaseStorage(winner);
  });
}
