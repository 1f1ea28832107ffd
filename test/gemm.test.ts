import { describe, it } from 'node:test';
import type { GemmArgs } from '../src/backend/backend.js';
import { gemm } from '../src/backend/js/gemm.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';

/** The textbook triple loop: the definition the tiled kernel must reproduce. */
function naive(g: GemmArgs<Float32Array>): Float32Array {
  const c = Float32Array.from(g.c);
  for (let p = 0; p < g.batch; p++) {
    for (let i = 0; i < g.M; i++) {
      for (let j = 0; j < g.N; j++) {
        let s = 0;
        for (let k = 0; k < g.K; k++) {
          const a = g.transA ? g.a[g.aOffset + p * g.strideA + k * g.lda + i]! : g.a[g.aOffset + p * g.strideA + i * g.lda + k]!;
          const b = g.transB ? g.b[g.bOffset + p * g.strideB + j * g.ldb + k]! : g.b[g.bOffset + p * g.strideB + k * g.ldb + j]!;
          s += a * b;
        }
        const o = g.cOffset + p * g.strideC + i * g.ldc + j;
        let y = (g.accumulate ? c[o]! + g.alpha * s : g.alpha * s) + (g.bias ? g.bias[j]! : 0);
        // The epilogue, written out: C = act(…) + addend.
        const act = g.epilogue?.activation;
        if (act === 'relu') y = Math.max(y, 0);
        else if (act === 'gelu') y = 0.5 * y * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (y + 0.044715 * y ** 3)));
        else if (act === 'silu') y = y / (1 + Math.exp(-y));
        const add = g.epilogue?.addend;
        if (add) y += add.data[add.offset + p * add.stride + i * add.ld + j]!;
        c[o] = y;
      }
    }
  }
  return c;
}

describe('js GEMM against the triple loop', () => {
  const rng = new Rng(9);
  const sizes = [1, 3, 4, 7, 33, 65];
  const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
  for (const transA of [false, true]) {
    for (const transB of [false, true]) {
      it(`transA=${transA} transB=${transB}, odd sizes, offsets, padded rows, batches`, () => {
        for (const M of sizes) {
          for (const N of [1, 5, 8, 33]) {
            for (const K of [1, 7, 64]) {
              const batch = 2;
              const shareB = (M + N + K) % 2 === 0; // stride 0: one matrix reused across the batch
              const lda = (transA ? M : K) + 2;
              const ldb = (transB ? K : N) + 1;
              const ldc = N + 3;
              const aRows = transA ? K : M;
              const bRows = transB ? N : K;
              const g: GemmArgs<Float32Array> = {
                transA, transB, M, N, K,
                a: rand(5 + batch * aRows * lda), aOffset: 5, lda,
                b: rand(2 + batch * bRows * ldb), bOffset: 2, ldb,
                c: rand(1 + batch * M * ldc), cOffset: 1, ldc,
                alpha: K % 2 ? 0.5 : 1, accumulate: N % 2 === 1,
                batch, strideA: aRows * lda, strideB: shareB ? 0 : bRows * ldb, strideC: M * ldc,
                bias: K === 7 ? rand(N) : null, // a fused bias on some shapes
              };
              // An epilogue on some shapes: each activation, and an addend with rows of its own stride.
              const activation = ([null, 'gelu', 'relu', 'silu'] as const)[(M + K) % 4];
              const addend = (M + N) % 3 === 0 ? { data: rand(4 + batch * M * (N + 2)), offset: 4, ld: N + 2, stride: M * (N + 2) } : null;
              if (activation || addend) g.epilogue = { activation, addend };
              const want = naive(g);
              gemm(g);
              assertClose(g.c, want, 1e-4, `M${M} N${N} K${K}`);
            }
          }
        }
      });
    }
  }
});
