import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

/**
 * Masked mean over positions: x [B, T, C] → [B, C], each row the average of
 * its non-padding positions (padding: B·T flags, 1 = padding). A padded
 * sentence must embed exactly as it would alone, so padding neither adds to
 * the sum nor to the count. A row that is all padding pools to zeros.
 */
export function meanPool(x: Tensor, padding?: Uint8Array): Tensor {
  if (x.rank !== 3) throw new Error(`meanPool expects [B, T, C], got [${x.shape}]`);
  const [B, T, C] = x.shape as [number, number, number];
  if (padding && padding.length !== B * T) throw new Error(`padding mask has ${padding.length} flags, expected ${B}×${T}`);
  const weights = poolWeights(padding, B, T);
  const out = Tensor.zeros([B, C]);
  meanPoolForward(x.data, weights, out.data, B, T, C);
  return record(out, [x], 'meanPool', () => {
    meanPoolBackward(out.grad!, weights, x.ensureGrad(), B, T, C);
  });
}

/** 1/count for each real position, 0 for padding: the pool is then a weighted sum. */
function poolWeights(padding: Uint8Array | undefined, B: number, T: number): Float32Array {
  const w = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    let count = 0;
    for (let t = 0; t < T; t++) if (!padding?.[b * T + t]) count++;
    for (let t = 0; t < T; t++) w[b * T + t] = count > 0 && !padding?.[b * T + t] ? 1 / count : 0;
  }
  return w;
}

function meanPoolForward(x: Float32Array, w: Float32Array, out: Float32Array, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    const o = b * C;
    for (let t = 0; t < T; t++) {
      const wt = w[b * T + t]!;
      if (wt === 0) continue;
      const xi = (b * T + t) * C;
      for (let c = 0; c < C; c++) out[o + c] = out[o + c]! + wt * x[xi + c]!;
    }
  }
}

/** Each real position receives its share of the pooled gradient; padding receives none. */
function meanPoolBackward(dout: Float32Array, w: Float32Array, dx: Float32Array, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    const o = b * C;
    for (let t = 0; t < T; t++) {
      const wt = w[b * T + t]!;
      if (wt === 0) continue;
      const xi = (b * T + t) * C;
      for (let c = 0; c < C; c++) dx[xi + c] = dx[xi + c]! + wt * dout[o + c]!;
    }
  }
}
