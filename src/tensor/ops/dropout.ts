import { backend } from '../../backend/index.js';
import type { Rng } from '../../util/rng.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

/** Randomly zero a fraction p of values while training (a regulariser); identity otherwise. */
export function dropout(x: Tensor, p: number, rng: Rng, training: boolean): Tensor {
  if (!training || p === 0) return x;
  if (p < 0 || p >= 1) throw new Error(`dropout probability must be in [0, 1), got ${p}`);
  const out = Tensor.zeros(x.shape);
  const mask = new Float32Array(x.size);
  backend().dropoutForward(x.data, out.data, mask, p, () => rng.random());
  return record(out, [x], 'dropout', () => {
    backend().binary('mul', out.grad!, out.shape, mask, out.shape, mask, out.shape);
    const g = x.ensureGrad();
    for (let i = 0; i < g.length; i++) g[i] = g[i]! + mask[i]!;
  });
}
