/**
 * out[r] = the index of the largest value of row r of x [rows, cols] (the
 * first one on ties, as torch.argmax), written as a float: greedy decoding's
 * choice of the next token. On a device backend the logits never leave the
 * device for it; only these `rows` numbers are read back.
 */
export function argmaxRows(x: Float32Array, rows: number, cols: number, out: Float32Array): void {
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let best = 0;
    let top = x[o]!;
    for (let j = 1; j < cols; j++) {
      const v = x[o + j]!;
      if (v > top) {
        top = v;
        best = j;
      }
    }
    out[r] = best;
  }
}
