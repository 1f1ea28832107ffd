/**
 * LayerNorm: normalise each row to mean 0 and variance 1, then scale and
 * shift by learned weight and bias. Mean and 1/σ are saved for the backward.
 */
export function layerNormForward(
  x: Float32Array, weight: Float32Array | null, bias: Float32Array | null, out: Float32Array,
  mean: Float32Array, rstd: Float32Array, rows: number, cols: number, eps: number,
): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = 0;
    for (let j = 0; j < cols; j++) m += x[o + j]!;
    m /= cols;
    let v = 0;
    for (let j = 0; j < cols; j++) {
      const d = x[o + j]! - m;
      v += d * d;
    }
    v /= cols; // biased variance, as PyTorch's layer_norm
    const s = 1 / Math.sqrt(v + eps);
    mean[r] = m;
    rstd[r] = s;
    for (let j = 0; j < cols; j++) {
      const n = (x[o + j]! - m) * s;
      out[o + j] = n * (weight ? weight[j]! : 1) + (bias ? bias[j]! : 0);
    }
  }
}

/**
 * With n = (x − μ)·s and g = dy·w: dx = s·(g − mean(g) − n·mean(g·n)).
 * The two means are what normalisation couples across a row.
 */
export function layerNormBackward(
  x: Float32Array, weight: Float32Array | null, mean: Float32Array, rstd: Float32Array, dy: Float32Array,
  dx: Float32Array, dWeight: Float32Array | null, dBias: Float32Array | null, rows: number, cols: number, accumulate: boolean,
): void {
  if (!accumulate) dx.fill(0, 0, rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    const m = mean[r]!;
    const s = rstd[r]!;
    let gMean = 0;
    let gnMean = 0;
    for (let j = 0; j < cols; j++) {
      const n = (x[o + j]! - m) * s;
      const g = dy[o + j]! * (weight ? weight[j]! : 1);
      gMean += g;
      gnMean += g * n;
      if (dWeight) dWeight[j] = dWeight[j]! + dy[o + j]! * n;
      if (dBias) dBias[j] = dBias[j]! + dy[o + j]!;
    }
    gMean /= cols;
    gnMean /= cols;
    for (let j = 0; j < cols; j++) {
      const n = (x[o + j]! - m) * s;
      const g = dy[o + j]! * (weight ? weight[j]! : 1);
      dx[o + j] = dx[o + j]! + s * (g - gMean - n * gnMean);
    }
  }
}
