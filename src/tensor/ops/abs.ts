import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

/**
 * |x| elementwise. The gradient is sign(x), taken as 0 at x = 0 (PyTorch's
 * choice): the kink has no slope of its own. Not a backend primitive — it
 * appears in losses over a handful of numbers, never in a hot loop — so the
 * op fills its arrays itself.
 */
export function abs(x: Tensor): Tensor {
  const out = Tensor.zeros(x.shape);
  for (let i = 0; i < x.size; i++) out.data[i] = Math.abs(x.data[i]!);
  return record(out, [x], 'abs', () => {
    const dy = out.grad!;
    const dx = x.ensureGrad();
    for (let i = 0; i < x.size; i++) dx[i] = dx[i]! + dy[i]! * Math.sign(x.data[i]!);
  });
}
