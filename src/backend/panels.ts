/**
 * fp32 weights [N, K] (a Linear's layout) stored in column panels for decoding
 * products of a few rows: PANEL_COLS output columns at a time, each panel
 * [K][PANEL_COLS] (zero past N), one panel after another. A k-row of a panel is
 * then PANEL_COLS consecutive weights that every activation row's x[m][k]
 * multiplies (broadcast) without a horizontal sum, and reading the panels is
 * one sequential stream: native/src/panel.h and panel_impl.inc say why that
 * makes 2–8 rows cost about one.
 */

/** Output columns per panel (native/src/panel.h's PANEL_COLS). */
export const PANEL_COLS = 64;

/** The panels of w [N, K]: ceil(N / PANEL_COLS) · K · PANEL_COLS floats. */
export function packPanels(w: Float32Array, N: number, K: number): Float32Array {
  if (w.length !== N * K) throw new Error(`packPanels: ${w.length} weights for [${N}, ${K}]`);
  const panels = Math.ceil(N / PANEL_COLS);
  const out = new Float32Array(panels * K * PANEL_COLS);
  for (let q = 0; q < panels; q++) {
    const base = q * K * PANEL_COLS;
    for (let j = 0; j < PANEL_COLS && q * PANEL_COLS + j < N; j++) {
      const row = (q * PANEL_COLS + j) * K;
      for (let k = 0; k < K; k++) out[base + k * PANEL_COLS + j] = w[row + k]!;
    }
  }
  return out;
}

/** out[rows, N] = x[rows, K]·Wᵀ + bias with W as packPanels gives it: the reference for the native kernel. */
export function linearPanelsWith(x: Float32Array, rows: number, K: number, panels: Float32Array, bias: Float32Array | null, out: Float32Array, N: number): void {
  for (let m = 0; m < rows; m++) {
    for (let n = 0; n < N; n++) {
      const q = Math.floor(n / PANEL_COLS);
      const at = q * K * PANEL_COLS + (n % PANEL_COLS);
      let s = 0;
      for (let k = 0; k < K; k++) s += x[m * K + k]! * panels[at + k * PANEL_COLS]!;
      out[m * N + n] = s + (bias ? bias[n]! : 0);
    }
  }
}
