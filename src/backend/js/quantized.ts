import type { ProductEpilogue } from '../backend.js';
import { applyRowsEpilogue } from '../gemm_epilogue.js';
import { binary, unary } from './elementwise.js';
import { dequantizeRow, halfToFloat, QUANT_BLOCKS, storedRow, type QuantizedMatrix } from '../quantized_matrix.js';

const fr = Math.fround;
const roundf = (x: number) => (x < 0 ? -Math.round(-x) : Math.round(x));

/**
 * The activation rows quantized as llama.cpp does before a q8_0 or q4_0
 * product: blocks of 32 values, each with a float scale d = max|x| / 127 and
 * int8 q = roundf(x / d). (llama.cpp also rounds d to f16; attn keeps it in
 * float32.) The dot product of two blocks is then an exact integer sum times
 * d_x·d_w — what the native kernels compute with vpdpbusd / vpmaddubsw.
 */
export function quantizeActivations(x: Float32Array, rows: number, K: number): { q: Int8Array; d: Float32Array } {
  const blocks = K / 32;
  const q = new Int8Array(rows * K);
  const d = new Float32Array(rows * blocks);
  for (let i = 0; i < rows * blocks; i++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[i * 32 + j]!));
    const di = fr(amax / 127);
    const id = di ? fr(1 / di) : 0;
    d[i] = di;
    for (let j = 0; j < 32; j++) q[i * 32 + j] = roundf(fr(x[i * 32 + j]! * id));
  }
  return { q, d };
}

/**
 * out[rows, N] = x[rows, K]·Wᵀ + bias with W block-quantized (ggml layouts,
 * quantized_matrix.ts) and read as stored: the reference for the native kernels.
 *
 * q8_0 / q4_0: the activations are quantized to 8-bit blocks too, and each
 * pair of blocks contributes d_w·d_x·Σ q_w·q_x (an integer sum).
 * q4_k / q6_k: each weight row is dequantized to floats and dotted with x.
 */
export function linearQuantized(x: Float32Array, rows: number, w: QuantizedMatrix, bias: Float32Array | null, out: Float32Array, epilogue: ProductEpilogue<Float32Array> | null = null): void {
  productInto(x, rows, w, bias, out);
  applyRowsEpilogue({ unary, binary }, out.subarray(0, rows * w.rows), epilogue);
}

function productInto(x: Float32Array, rows: number, w: QuantizedMatrix, bias: Float32Array | null, out: Float32Array): void {
  const { rows: N, cols: K, type } = w;
  if (type === 'q8_0' || type === 'q4_0') {
    const { q: xq, d: xd } = quantizeActivations(x, rows, K);
    const { bytes } = QUANT_BLOCKS[type];
    const blocks = K / 32;
    for (let n = 0; n < N; n++) {
      const data = storedRow(w, n); // row n's blocks in ggml's layout, whatever the matrix's
      const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
      for (let m = 0; m < rows; m++) {
        let sum = 0;
        for (let b = 0; b < blocks; b++) {
          const p = b * bytes;
          const xo = (m * blocks + b) * 32;
          let isum = 0;
          if (type === 'q8_0') {
            for (let j = 0; j < 32; j++) isum += view.getInt8(p + 2 + j) * xq[xo + j]!;
          } else {
            for (let j = 0; j < 16; j++) {
              const byte = data[p + 2 + j]!;
              isum += ((byte & 0xf) - 8) * xq[xo + j]! + ((byte >> 4) - 8) * xq[xo + 16 + j]!;
            }
          }
          sum += fr(halfToFloat(view.getUint16(p, true)) * xd[m * blocks + b]!) * isum;
        }
        out[m * N + n] = sum + (bias ? bias[n]! : 0);
      }
    }
    return;
  }
  const row = new Float32Array(K);
  for (let n = 0; n < N; n++) {
    dequantizeRow(w, n, row);
    for (let m = 0; m < rows; m++) {
      let sum = 0;
      for (let k = 0; k < K; k++) sum += row[k]! * x[m * K + k]!;
      out[m * N + n] = sum + (bias ? bias[n]! : 0);
    }
  }
}
