import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

/**
 * Max over positions: x [B, T, C] → [B, C], each channel the largest value
 * any position holds. PointNet's symmetric function: the result does not
 * depend on the order of the T points, so a set of points embeds as a set.
 * The gradient flows only to the position that won each channel (the max
 * is a switch: the others did not affect the output).
 */
export function maxPool(x: Tensor): Tensor {
  if (x.rank !== 3) throw new Error(`maxPool expects [B, T, C], got [${x.shape}]`);
  const [B, T, C] = x.shape as [number, number, number];
  if (T === 0) throw new Error('maxPool over zero positions');
  const out = Tensor.zeros([B, C]);
  const winner = new Int32Array(B * C);
  const xs = x.data;
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      let best = 0;
      let value = xs[b * T * C + c]!;
      for (let t = 1; t < T; t++) {
        const v = xs[(b * T + t) * C + c]!;
        if (v > value) [value, best] = [v, t];
      }
      out.data[b * C + c] = value;
      winner[b * C + c] = best;
    }
  }
  return record(out, [x], 'maxPool', () => {
    const dy = out.grad!;
    const dx = x.ensureGrad();
    for (let b = 0; b < B; b++) for (let c = 0; c < C; c++) dx[(b * T + winner[b * C + c]!) * C + c] += dy[b * C + c]!;
  });
}
