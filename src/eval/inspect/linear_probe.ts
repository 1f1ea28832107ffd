/**
 * A linear probe: fit y ≈ w·x + b by ridge regression (least squares with a
 * small penalty on w) on some rows of a layer's vectors, then predict the
 * others. If a straight line through the vectors recovers a property (the
 * position, whether the next character is a vowel), the layer holds it in a
 * form later layers can read.
 */
export interface ProbeFit {
  /** Predictions for the held-out rows, one array per target. */
  predictions: Float64Array[];
}

/**
 * features: rows × dims (row-major); targets: one array of `rows` values per
 * property; rows [0, trainRows) are fitted, the rest predicted. All targets
 * share one solve of the normal equations (XᵀX + λI)·W = XᵀY.
 */
export function fitProbes(features: Float32Array, rows: number, dims: number, targets: ArrayLike<number>[], trainRows: number, lambda = 1e-2): ProbeFit {
  const n = dims + 1; // the last column is the constant 1: the bias
  // Each feature standardised on the fitted rows, so the penalty λ weighs every direction alike.
  const mean = new Float64Array(dims);
  const spread = new Float64Array(dims);
  for (let r = 0; r < trainRows; r++) for (let c = 0; c < dims; c++) mean[c] += features[r * dims + c]! / trainRows;
  for (let r = 0; r < trainRows; r++) for (let c = 0; c < dims; c++) spread[c] += (features[r * dims + c]! - mean[c]!) ** 2 / trainRows;
  for (let c = 0; c < dims; c++) spread[c] = Math.sqrt(spread[c]!) || 1;
  const at = (r: number, c: number): number => (c === dims ? 1 : (features[r * dims + c]! - mean[c]!) / spread[c]!);
  const A = new Float64Array(n * n);
  const Bm = new Float64Array(n * targets.length);
  const xr = new Float64Array(n);
  for (let r = 0; r < trainRows; r++) {
    for (let c = 0; c < n; c++) xr[c] = at(r, c);
    for (let i = 0; i < n; i++) {
      const xi = xr[i]!;
      if (xi === 0) continue;
      for (let j = i; j < n; j++) A[i * n + j] += xi * xr[j]!;
      targets.forEach((t, k) => (Bm[i * targets.length + k] += xi * t[r]!));
    }
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < i; j++) A[i * n + j] = A[j * n + i]!;
    if (i < dims) A[i * n + i] += lambda * trainRows;
  }
  const W = solve(A, Bm, n, targets.length);
  const predictions = targets.map((_, k) => {
    const p = new Float64Array(rows - trainRows);
    for (let r = trainRows; r < rows; r++) {
      let s = 0;
      for (let c = 0; c < n; c++) s += at(r, c) * W[c * targets.length + k]!;
      p[r - trainRows] = s;
    }
    return p;
  });
  return { predictions };
}

/** Gaussian elimination with partial pivoting: A (n×n) · X = B (n×m), A and B overwritten. */
function solve(A: Float64Array, B: Float64Array, n: number, m: number): Float64Array {
  for (let col = 0; col < n; col++) {
    let pivot = col;
    for (let r = col + 1; r < n; r++) if (Math.abs(A[r * n + col]!) > Math.abs(A[pivot * n + col]!)) pivot = r;
    if (pivot !== col) {
      for (let c = 0; c < n; c++) [A[col * n + c], A[pivot * n + c]] = [A[pivot * n + c]!, A[col * n + c]!];
      for (let c = 0; c < m; c++) [B[col * m + c], B[pivot * m + c]] = [B[pivot * m + c]!, B[col * m + c]!];
    }
    const d = A[col * n + col]!;
    if (Math.abs(d) < 1e-12) continue; // a direction the data never uses: its weight stays 0
    for (let r = 0; r < n; r++) {
      if (r === col) continue;
      const f = A[r * n + col]! / d;
      if (f === 0) continue;
      for (let c = col; c < n; c++) A[r * n + c] -= f * A[col * n + c]!;
      for (let c = 0; c < m; c++) B[r * m + c] -= f * B[col * m + c]!;
    }
  }
  const X = new Float64Array(n * m);
  for (let i = 0; i < n; i++) {
    const d = A[i * n + i]!;
    for (let c = 0; c < m; c++) X[i * m + c] = Math.abs(d) < 1e-12 ? 0 : B[i * m + c]! / d;
  }
  return X;
}

/** R²: 1 − (squared error of the predictions) / (squared error of predicting the mean). 1 is perfect, ≤ 0 is no better than the mean. */
export function rSquared(truth: ArrayLike<number>, predicted: ArrayLike<number>): number {
  const n = truth.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += truth[i]!;
  mean /= n;
  let se = 0;
  let st = 0;
  for (let i = 0; i < n; i++) {
    se += (truth[i]! - predicted[i]!) ** 2;
    st += (truth[i]! - mean) ** 2;
  }
  return st === 0 ? 0 : 1 - se / st;
}
