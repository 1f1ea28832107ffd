import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { gemmArgs, mat, matT } from '../src/backend/gemm_args.js';
import { gemm } from '../src/backend/js/gemm.js';

describe('gemmArgs: a GEMM that reads like its formula', () => {
  it('"y = x·Wᵀ + b" is the record the Linear layer used to spell out field by field', () => {
    const [x, w, y, b] = [new Float32Array(6), new Float32Array(12), new Float32Array(8), new Float32Array(4)];
    assert.deepEqual(gemmArgs({ M: 2, N: 4, K: 3 }, mat(y, 4), mat(x, 3), matT(w, 3), { bias: b }), {
      transA: false, transB: true, M: 2, N: 4, K: 3, a: x, aOffset: 0, lda: 3, b: w, bOffset: 0, ldb: 3, c: y, cOffset: 0, ldc: 4,
      alpha: 1, accumulate: false, batch: 1, strideA: 0, strideB: 0, strideC: 0, bias: b,
    });
  });

  it('computes a batched product with offsets, strides and accumulation', () => {
    // Two 2×2 products C_p += A_p·Bᵀ (B shared), C placed after one unused element.
    const A = Float32Array.from([1, 2, 3, 4, 5, 6, 7, 8]);
    const B = Float32Array.from([1, 0, 1, 1]); // Bᵀ = [[1, 1], [0, 1]]
    const C = new Float32Array(9).fill(1);
    gemm(gemmArgs({ M: 2, N: 2, K: 2 }, mat(C, 2, { offset: 1, stride: 4 }), mat(A, 2, { stride: 4 }), matT(B, 2), { batch: 2, accumulate: true }));
    assert.deepEqual(Array.from(C), [1, 2, 4, 4, 8, 6, 12, 8, 16]);
    assert.throws(() => gemmArgs({ M: 1, N: 1, K: 1 }, matT(C, 1), mat(A, 1), mat(B, 1)), /output C/);
  });
});
