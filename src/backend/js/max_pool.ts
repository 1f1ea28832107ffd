/**
 * Max over positions (tensor/ops/max_pool.ts): x [B, T, C] → out [B, C], and
 * for each (b, c) the position that won, stored as a float in `winner` (so a
 * device backend keeps it in its own float storage, as argmaxRows does). The
 * first position wins ties.
 */
export function maxPoolForward(x: Float32Array, out: Float32Array, winner: Float32Array, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      let best = 0;
      let value = x[b * T * C + c]!;
      for (let t = 1; t < T; t++) {
        const v = x[(b * T + t) * C + c]!;
        if (v > value) [value, best] = [v, t];
      }
      out[b * C + c] = value;
      winner[b * C + c] = best;
    }
  }
}

/** dx[b, winner[b, c], c] += dy[b, c]: the gradient goes only to the position that won (the max is a switch). */
export function maxPoolBackward(dy: Float32Array, winner: Float32Array, dx: Float32Array, B: number, T: number, C: number): void {
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      const i = (b * T + winner[b * C + c]!) * C + c;
      dx[i] = dx[i]! + dy[b * C + c]!;
    }
  }
}
