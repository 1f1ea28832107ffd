import { bf16Round } from './bf16.js';
import type { GemmArgs } from '../backend.js';
import { applyGemmEpilogue } from '../gemm_epilogue.js';
import { binary, unary } from './elementwise.js';

/**
 * Matrix multiply in plain TypeScript: C = alpha·op(A)·op(B) (+ C) (+ bias),
 * then the epilogue (activation, addend) as passes over C.
 *
 * The arithmetic is the easy part; what decides the speed is how many
 * instructions V8 spends around each multiply-add. Three tricks, each measured:
 *
 * 1. Register tiles. A 3×2 block of C is kept in six local variables while the
 *    k-loop runs, so each step loads 3 + 2 values to do 6 multiply-adds. Bigger
 *    tiles (4×4) look better on paper, but V8 then runs out of the 15 usable
 *    XMM registers and spills sums to the stack, which costs more than it saves.
 *
 * 2. Packing. Before multiplying, op(A) is copied into panels of 3 rows and
 *    op(B) into panels of 2 columns, interleaved by k, into one reusable
 *    Float64Array. The kernel then reads two sequential streams with a single
 *    running index each, whatever the transposes, strides or offsets were —
 *    so NN, NT, TN and TT all share one kernel — and it needs no float32→double
 *    conversion in the hot loop. Packing costs O((M+N)·K) against O(M·N·K) work.
 *
 * 3. Cheap indexing. Every typed-array read costs V8 a bounds check; writing
 *    `(i + 1) | 0` additionally tells it the index is a 32-bit integer, which
 *    removes an overflow check per read. Unrolling k by two halves the
 *    per-iteration loop overhead.
 *
 * Each dot product is summed in double precision and rounded to float32 once.
 * Together this is about 1.3× the speed of a strided 4×4 tile kernel.
 */
export function gemm(g: GemmArgs<Float32Array>): void {
  const { M, N, K } = g;
  // Element (i, k) of op(A) is at a[i·ars + k·acs]; (k, j) of op(B) at b[k·brs + j·bcs].
  const ars = g.transA ? 1 : g.lda;
  const acs = g.transA ? g.lda : 1;
  const brs = g.transB ? 1 : g.ldb;
  const bcs = g.transB ? g.ldb : 1;

  const aPanels = Math.ceil(M / MR);
  const bPanels = Math.ceil(N / NR);
  const bStart = aPanels * MR * K; // packed B follows packed A in the same buffer
  const P = workspace(bStart + bPanels * NR * K);
  // Mixed precision: both operands rounded to bfloat16 as they are packed (the sums stay wide).
  const bf16 = g.bf16 ?? false;

  for (let p = 0; p < g.batch; p++) {
    // A stride of 0 means every batch entry uses the same matrix: pack it once.
    if (p === 0 || g.strideA !== 0) packPanels(g.a, g.aOffset + p * g.strideA, ars, acs, M, K, MR, P, 0, bf16);
    if (p === 0 || g.strideB !== 0) packPanels(g.b, g.bOffset + p * g.strideB, bcs, brs, N, K, NR, P, bStart, bf16);
    const cOff = g.cOffset + p * g.strideC;
    for (let ip = 0; ip < aPanels; ip++) {
      const i = ip * MR;
      for (let jp = 0; jp < bPanels; jp++) {
        const j = jp * NR;
        kernel3x2(
          K, P, i * K, bStart + j * K,
          g.c, cOff + i * g.ldc + j, g.ldc, Math.min(MR, M - i), Math.min(NR, N - j),
          g.alpha, g.accumulate,
        );
      }
    }
    if (g.bias) addBias(g.c, cOff, g.ldc, M, N, g.bias);
  }
  applyGemmEpilogue({ unary, binary }, g);
}

/** C[i][j] += bias[j]: the reference for the native kernel's fused bias. */
function addBias(C: Float32Array, off: number, ldc: number, M: number, N: number, bias: Float32Array): void {
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) C[off + i * ldc + j] = C[off + i * ldc + j]! + bias[j]!;
}

/** Tile shape of the micro-kernel: MR rows of op(A) by NR columns of op(B). */
const MR = 3;
const NR = 2;

/** Packed panels, kept between calls so steady-state training allocates nothing. */
let scratch = new Float64Array(0);

function workspace(size: number): Float64Array {
  if (scratch.length < size) scratch = new Float64Array(size);
  return scratch;
}

/**
 * Copy `rows` vectors of length K into panels of R vectors, interleaved by k:
 * a panel stores [v0[0] v1[0] … vR-1[0]] [v0[1] v1[1] …] … so the kernel reads it
 * front to back. Vector r's k-th element is src[off + r·rs + k·cs]. The last
 * panel is zero-filled when rows is not a multiple of R: the kernel then always
 * computes a full tile, and only the store looks at the real size.
 */
function packPanels(
  src: Float32Array, off: number, rs: number, cs: number, rows: number, K: number,
  R: number, dst: Float64Array, d: number, bf16: boolean,
): void {
  for (let r0 = 0; r0 < rows; r0 += R) {
    const n = Math.min(R, rows - r0);
    for (let k = 0; k < K; k++) {
      let s = off + r0 * rs + k * cs;
      if (bf16) for (let r = 0; r < n; r++, s += rs) dst[d++] = bf16Round(src[s]!);
      else for (let r = 0; r < n; r++, s += rs) dst[d++] = src[s]!;
      for (let r = n; r < R; r++) dst[d++] = 0;
    }
  }
}

/**
 * C[o..] (an m×n corner of a 3×2 tile, m ≤ 3, n ≤ 2) = alpha · Σ_k a_k·b_kᵀ,
 * where a_k (3 values) starts at P[pa + 3k] and b_k (2 values) at P[pb + 2k].
 */
function kernel3x2(
  K: number, P: Float64Array, pa: number, pb: number,
  C: Float32Array, o: number, ldc: number, m: number, n: number,
  alpha: number, acc: boolean,
): void {
  let c00 = 0, c01 = 0;
  let c10 = 0, c11 = 0;
  let c20 = 0, c21 = 0;
  const end = (pa + 3 * K) | 0;
  const end2 = (end - 3) | 0; // the unrolled loop runs while two k-steps remain
  for (; pa < end2; pa = (pa + 6) | 0, pb = (pb + 4) | 0) {
    const x0 = P[pa]!, x1 = P[(pa + 1) | 0]!, x2 = P[(pa + 2) | 0]!;
    const y0 = P[pb]!, y1 = P[(pb + 1) | 0]!;
    c00 += x0 * y0; c01 += x0 * y1;
    c10 += x1 * y0; c11 += x1 * y1;
    c20 += x2 * y0; c21 += x2 * y1;
    const u0 = P[(pa + 3) | 0]!, u1 = P[(pa + 4) | 0]!, u2 = P[(pa + 5) | 0]!;
    const v0 = P[(pb + 2) | 0]!, v1 = P[(pb + 3) | 0]!;
    c00 += u0 * v0; c01 += u0 * v1;
    c10 += u1 * v0; c11 += u1 * v1;
    c20 += u2 * v0; c21 += u2 * v1;
  }
  if (pa < end) { // odd K: one step left
    const x0 = P[pa]!, x1 = P[(pa + 1) | 0]!, x2 = P[(pa + 2) | 0]!;
    const y0 = P[pb]!, y1 = P[(pb + 1) | 0]!;
    c00 += x0 * y0; c01 += x0 * y1;
    c10 += x1 * y0; c11 += x1 * y1;
    c20 += x2 * y0; c21 += x2 * y1;
  }
  storeRow(C, o, n, alpha, acc, c00, c01);
  if (m > 1) storeRow(C, o + ldc, n, alpha, acc, c10, c11);
  if (m > 2) storeRow(C, o + 2 * ldc, n, alpha, acc, c20, c21);
}

/** Write the first n (1 or 2) sums of a tile row, scaled by alpha, into C. */
function storeRow(C: Float32Array, q: number, n: number, alpha: number, acc: boolean, v0: number, v1: number): void {
  if (acc) {
    C[q] = C[q]! + alpha * v0;
    if (n > 1) C[q + 1] = C[q + 1]! + alpha * v1;
  } else {
    C[q] = alpha * v0;
    if (n > 1) C[q + 1] = alpha * v1;
  }
}
