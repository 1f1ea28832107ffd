/** Below this norm a row is treated as having norm EPS, so a zero vector stays finite. */
export const L2_EPS = 1e-12;

/** y = x / max(‖x‖, EPS) for each row of D values; norms[r] receives the divisor (tensor/ops/l2_normalize.ts). */
export function l2NormalizeForward(x: Float32Array, y: Float32Array, norms: Float32Array, rows: number, D: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let sq = 0;
    for (let i = 0; i < D; i++) sq += x[o + i]! * x[o + i]!;
    const n = Math.max(Math.sqrt(sq), L2_EPS);
    norms[r] = n;
    for (let i = 0; i < D; i++) y[o + i] = x[o + i]! / n;
  }
}

/**
 * dx += (dy − y·(y·dy)) / ‖x‖: the gradient loses its component along y,
 * because moving x along itself does not change its direction.
 */
export function l2NormalizeBackward(y: Float32Array, norms: Float32Array, dy: Float32Array, dx: Float32Array, rows: number, D: number): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let dot = 0;
    for (let i = 0; i < D; i++) dot += y[o + i]! * dy[o + i]!;
    const inv = 1 / norms[r]!;
    for (let i = 0; i < D; i++) dx[o + i] = dx[o + i]! + (dy[o + i]! - y[o + i]! * dot) * inv;
  }
}
