import type { AttentionDims, AttentionSaved, GemmArgs } from '../backend.js';
import { gemm } from './gemm.js';
import { softmaxRow } from './softmax.js';

/**
 * Scaled dot-product attention, head by head: S = q·kᵀ·scale, mask the
 * future (causal), P = softmax(S), out = P·v. q, k and v are [B, T, ·] with
 * head h occupying columns h·hd … h·hd+hd−1, so heads are read with a row
 * stride (C, or d.stride) and never copied out.
 */
export function attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, d: AttentionDims): AttentionSaved {
  const { B, T, nHead, headDim, causal, scale } = d;
  const probs = new Float32Array(B * nHead * T * T); // kept for the backward pass
  const C = nHead * headDim;
  const ld = d.stride ?? C;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHead; h++) {
      const x = b * T * ld + h * headDim; // this head in q, k, v
      const o = b * T * C + h * headDim; // and in out
      const p = (b * nHead + h) * T * T;
      gemm(mm(false, true, T, T, headDim, q, x, ld, k, x, ld, probs, p, T, scale, false));
      for (let i = 0; i < T; i++) {
        const row = p + i * T;
        const visible = causal ? i + 1 : T;
        softmaxRow(probs, probs, row, visible);
        for (let j = visible; j < T; j++) probs[row + j] = 0;
      }
      gemm(mm(false, false, T, headDim, T, probs, p, T, v, x, ld, out, o, C, 1, false));
    }
  }
  return probs;
}

export function attentionBackward(
  saved: AttentionSaved, q: Float32Array, k: Float32Array, v: Float32Array, _out: Float32Array, dOut: Float32Array,
  dq: Float32Array, dk: Float32Array, dv: Float32Array, d: AttentionDims, accumulate: boolean,
): void {
  const { B, T, nHead, headDim, scale } = d;
  const C = nHead * headDim;
  const ld = d.stride ?? C;
  const probs = saved as Float32Array;
  const dP = new Float32Array(T * T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHead; h++) {
      const x = b * T * ld + h * headDim;
      const o = b * T * C + h * headDim;
      const p = (b * nHead + h) * T * T;
      gemm(mm(false, true, T, T, headDim, dOut, o, C, v, x, ld, dP, 0, T, 1, false)); // dP = dOut·vᵀ
      gemm(mm(true, false, T, headDim, T, probs, p, T, dOut, o, C, dv, x, ld, 1, accumulate)); // dv (+)= Pᵀ·dOut
      // Softmax backward in place: dS = P ⊙ (dP − Σ_j dP⊙P). Masked entries have P = 0.
      for (let i = 0; i < T; i++) {
        let dot = 0;
        for (let j = 0; j < T; j++) dot += dP[i * T + j]! * probs[p + i * T + j]!;
        for (let j = 0; j < T; j++) dP[i * T + j] = probs[p + i * T + j]! * (dP[i * T + j]! - dot);
      }
      gemm(mm(false, false, T, headDim, T, dP, 0, T, k, x, ld, dq, x, ld, scale, accumulate)); // dq (+)= dS·k
      gemm(mm(true, false, T, headDim, T, dP, 0, T, q, x, ld, dk, x, ld, scale, accumulate)); // dk (+)= dSᵀ·q
    }
  }
}

function mm(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  a: Float32Array, aOffset: number, lda: number, b: Float32Array, bOffset: number, ldb: number,
  c: Float32Array, cOffset: number, ldc: number, alpha: number, accumulate: boolean,
): GemmArgs {
  return { transA, transB, M, N, K, a, aOffset, lda, b, bOffset, ldb, c, cOffset, ldc, alpha, accumulate, batch: 1, strideA: 0, strideB: 0, strideC: 0 };
}
