import { backend } from '../../backend/index.js';
import type { Rng } from '../../util/rng.js';
import { record } from '../autograd.js';
import { Tensor, allocStorage, releaseStorage } from '../tensor.js';

/** Randomly zero a fraction p of values while training (a regulariser); identity otherwise. */
export function dropout(x: Tensor, p: number, rng: Rng, training: boolean): Tensor {
  if (!training || p === 0) return x;
  if (p < 0 || p >= 1) throw new Error(`dropout probability must be in [0, 1), got ${p}`);
  const out = Tensor.empty(x.shape);
  const mask = allocStorage(x.size, false);
  // One draw from the model's generator seeds the whole mask (so resuming a run replays it exactly).
  backend().dropoutForward(x.storage, out.storage, mask, p, rng.nextUint32());
  return record(out, [x], 'dropout', () => {
    const dx = x.gradSink();
    backend().dropoutBackward(out.gradStorage!, mask, dx.grad, dx.accumulate);
    // Spent (the backward runs once): back to the pool.
    releaseStorage(mask);
  });
}
