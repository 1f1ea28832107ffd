/**
 * RMSNorm (Zhang & Sennrich 2019, used by Llama): scale each row by the
 * inverse of its root mean square, then by a learned weight. Unlike
 * LayerNorm there is no mean subtracted and no bias. 1/rms is saved for the
 * backward.
 */
export function rmsNormForward(
  x: Float32Array, weight: Float32Array | null, out: Float32Array, rstd: Float32Array, rows: number, cols: number, eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let ss = 0;
    for (let j = 0; j < cols; j++) ss += x[o + j]! * x[o + j]!;
    const s = 1 / Math.sqrt(ss / cols + eps);
    rstd[r] = s;
    for (let j = 0; j < cols; j++) out[o + j] = x[o + j]! * s * (weight ? weight[j]! : 1);
  }
}

/**
 * With n = x·s and g = dy·w: dx = s·(g − n·mean(g·n)). The mean is what the
 * shared 1/rms couples across a row; dW += dy·n always accumulates.
 */
export function rmsNormBackward(
  x: Float32Array, weight: Float32Array | null, rstd: Float32Array, dy: Float32Array,
  dx: Float32Array, dWeight: Float32Array | null, rows: number, cols: number, accumulate: boolean,
): void {
  if (!accumulate) dx.fill(0, 0, rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const s = rstd[r]!;
    let gnMean = 0;
    for (let j = 0; j < cols; j++) {
      const n = x[o + j]! * s;
      gnMean += dy[o + j]! * (weight ? weight[j]! : 1) * n;
      if (dWeight) dWeight[j] = dWeight[j]! + dy[o + j]! * n;
    }
    gnMean /= cols;
    for (let j = 0; j < cols; j++) {
      const n = x[o + j]! * s;
      dx[o + j] = dx[o + j]! + s * (dy[o + j]! * (weight ? weight[j]! : 1) - n * gnMean);
    }
  }
}
