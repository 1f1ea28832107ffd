/**
 * Softmax over the last axis. Subtracting the row maximum before exp keeps
 * every exponent ≤ 0, so large logits cannot overflow to Infinity; the result
 * is unchanged because the factor e^−max cancels between numerator and sum.
 */
export function softmaxForward(x: Float32Array, out: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) softmaxRow(x, out, r * cols, cols);
}

export function softmaxRow(x: Float32Array, out: Float32Array, o: number, cols: number): void {
  let max = -Infinity;
  for (let j = 0; j < cols; j++) if (x[o + j]! > max) max = x[o + j]!;
  if (max === -Infinity) {
    // Every position masked: define the row as zeros rather than NaN.
    for (let j = 0; j < cols; j++) out[o + j] = 0;
    return;
  }
  let sum = 0;
  for (let j = 0; j < cols; j++) {
    const e = Math.exp(x[o + j]! - max);
    out[o + j] = e;
    sum += e;
  }
  const inv = 1 / sum;
  for (let j = 0; j < cols; j++) out[o + j] = out[o + j]! * inv;
}

/** dx = y ⊙ (dy − Σ dy⊙y): the Jacobian of softmax applied to dy, per row. */
export function softmaxBackward(y: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, cols: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let dot = 0;
    for (let j = 0; j < cols; j++) dot += dy[o + j]! * y[o + j]!;
    for (let j = 0; j < cols; j++) dx[o + j] = dx[o + j]! + y[o + j]! * (dy[o + j]! - dot);
  }
}
