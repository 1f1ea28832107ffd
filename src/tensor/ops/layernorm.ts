import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

/** Layer normalisation over the last axis, with optional learned scale and shift. */
export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  const cols = x.shape[x.rank - 1]!;
  const rows = x.size / cols;
  const out = Tensor.empty(x.shape);
  const mean = new Float32Array(rows);
  const rstd = new Float32Array(rows);
  const be = backend();
  be.layerNormForward(x.data, weight?.data ?? null, bias?.data ?? null, out.data, mean, rstd, rows, cols, eps);
  const inputs = [x, ...(weight ? [weight] : []), ...(bias ? [bias] : [])];
  return record(out, inputs, 'layerNorm', () => {
    const dx = x.requiresGrad ? x.gradSink() : { grad: new Float32Array(x.size), accumulate: false };
    const dW = weight?.requiresGrad ? weight.ensureGrad() : null;
    const dB = bias?.requiresGrad ? bias.ensureGrad() : null;
    be.layerNormBackward(x.data, weight?.data ?? null, mean, rstd, out.grad!, dx.grad, dW, dB, rows, cols, dx.accumulate);
  });
}
