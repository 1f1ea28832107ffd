import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor, allocStorage, releaseStorage } from '../tensor.js';

/** Layer normalisation over the last axis, with optional learned scale and shift. */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const cols = x.shape[x.rank - 1]!;
  const rows = x.size / cols;
  const out = Tensor.empty(x.shape);
  const mean = allocStorage(rows, false);
  const rstd = allocStorage(rows, false);
  const be = backend();
  be.layerNormForward(x.storage, weight?.storage ?? null, bias?.storage ?? null, out.storage, mean, rstd, rows, cols, eps);
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return record(out, inputs, 'layerNorm', () => {
    const dx = x.requiresGrad ? x.gradSink() : { grad: allocStorage(x.size, false), accumulate: false };
    const dW = weight?.requiresGrad ? weight.ensureGradStorage() : null;
    const dB = bias?.requiresGrad ? bias.ensureGradStorage() : null;
    be.layerNormBackward(x.storage, weight?.storage ?? null, mean, rstd, out.gradStorage!, dx.grad, dW, dB, rows, cols, dx.accumulate);
    // Spent (the backward runs once): back to the pool, so a device step's next forward gets the same buffers.
    releaseStorage(mean);
    releaseStorage(rstd);
    if (!x.requiresGrad) releaseStorage(dx.grad);
  });
}
