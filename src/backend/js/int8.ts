import type { ProductEpilogue } from '../backend.js';
import { applyRowsEpilogue } from '../gemm_epilogue.js';
import { binary, unary } from './elementwise.js';

/**
 * y = (x·Wᵀ)∘scale + bias with W stored as int8 [N, K] and one fp32 scale per
 * output row (per-channel weight-only quantization): the reference for the
 * native kernel, which widens the int8 weights on the fly the same way.
 * x is [rows, K]; y is [rows, N].
 */
export function linearInt8(
  x: Float32Array, rows: number, K: number, w: Int8Array, scale: Float32Array, bias: Float32Array | null, out: Float32Array, N: number, epilogue: ProductEpilogue<Float32Array> | null = null,
): void {
  for (let m = 0; m < rows; m++) {
    for (let n = 0; n < N; n++) {
      let s = 0;
      const wo = n * K;
      const xo = m * K;
      for (let k = 0; k < K; k++) s += x[xo + k]! * w[wo + k]!;
      out[m * N + n] = s * scale[n]! + (bias ? bias[n]! : 0);
    }
  }
  applyRowsEpilogue({ unary, binary }, out.subarray(0, rows * N), epilogue);
}
