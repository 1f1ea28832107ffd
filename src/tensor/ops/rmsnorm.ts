import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor, allocStorage, releaseStorage } from '../tensor.js';

/**
 * RMSNorm over the last axis: w · x / √(mean(x²) + eps) (Llama's norm: no
 * mean subtracted, no bias). 1/rms per row is saved for the backward.
 */
export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  const cols = x.shape[x.rank - 1]!;
  if (weight && weight.size !== cols) throw new Error(`rmsNorm: weight of ${weight.size} values for rows of ${cols}`);
  const rows = x.size / cols;
  const out = Tensor.empty(x.shape);
  const rstd = allocStorage(rows, false);
  const be = backend();
  be.rmsNormForward(x.storage, weight?.storage ?? null, out.storage, rstd, rows, cols, eps);
  return record(out, weight ? [x, weight] : [x], 'rmsNorm', () => {
    const dx = x.requiresGrad ? x.gradSink() : { grad: allocStorage(x.size, false), accumulate: false };
    const dW = weight?.requiresGrad ? weight.ensureGradStorage() : null;
    be.rmsNormBackward(x.storage, weight?.storage ?? null, rstd, out.gradStorage!, dx.grad, dW, rows, cols, dx.accumulate);
    // Spent (the backward runs once): back to the pool.
    releaseStorage(rstd);
    if (!x.requiresGrad) releaseStorage(dx.grad);
  });
}
