import { backend } from '../../backend/index.js';
import type { GemmArgs } from '../../backend/backend.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
}

/**
 * Batched matrix product op(a)·op(b). a is [...batch, M, K] (or [..., K, M]
 * with transA); b has the same batch dims, or is 2-D and shared by every
 * batch entry (as a weight matrix is).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = opts.transA ?? false;
  const transB = opts.transB ?? false;
  if (a.rank < 2 || b.rank < 2) throw new Error(`matmul needs rank ≥ 2, got [${a.shape}] and [${b.shape}]`);
  const [aR, aC] = a.shape.slice(-2) as [number, number];
  const [bR, bC] = b.shape.slice(-2) as [number, number];
  const M = transA ? aC : aR;
  const K = transA ? aR : aC;
  const Kb = transB ? bC : bR;
  const N = transB ? bR : bC;
  if (K !== Kb) throw new Error(`matmul inner sizes differ: [${a.shape}]${transA ? 'ᵀ' : ''} · [${b.shape}]${transB ? 'ᵀ' : ''}`);
  const batchShape = a.shape.slice(0, -2);
  const batch = batchShape.reduce((p, q) => p * q, 1);
  const shared = b.rank === 2;
  if (!shared && b.shape.slice(0, -2).join() !== batchShape.join()) {
    throw new Error(`matmul batch dims differ: [${a.shape}] and [${b.shape}]`);
  }
  const out = Tensor.empty([...batchShape, M, N]);
  const base = { a: a.data, b: b.data, c: out.data, aOffset: 0, bOffset: 0, cOffset: 0, alpha: 1, accumulate: false };
  backend().gemm({
    ...base, transA, transB, M, N, K, lda: aC, ldb: bC, ldc: N,
    batch, strideA: aR * aC, strideB: shared ? 0 : bR * bC, strideC: M * N,
  });
  return record(out, [a, b], 'matmul', () => {
    const dC = out.grad!;
    const common = { aOffset: 0, bOffset: 0, cOffset: 0, alpha: 1, accumulate: true };
    if (a.requiresGrad) {
      // dA = dC·op(B)ᵀ, or (for a stored transposed) op(B)·dCᵀ.
      const g: GemmArgs = transA
        ? { ...common, transA: transB, transB: true, M: K, N: M, K: N, a: b.data, lda: bC, b: dC, ldb: N, c: a.ensureGrad(), ldc: aC, batch, strideA: shared ? 0 : bR * bC, strideB: M * N, strideC: aR * aC }
        : { ...common, transA: false, transB: !transB, M, N: K, K: N, a: dC, lda: N, b: b.data, ldb: bC, c: a.ensureGrad(), ldc: aC, batch, strideA: M * N, strideB: shared ? 0 : bR * bC, strideC: aR * aC };
      backend().gemm(g);
    }
    if (b.requiresGrad) {
      // dB = op(A)ᵀ·dC, or (for b stored transposed) dCᵀ·op(A). A shared B sums over the batch.
      const g: GemmArgs = transB
        ? { ...common, transA: true, transB: transA, M: N, N: K, K: M, a: dC, lda: N, b: a.data, ldb: aC, c: b.ensureGrad(), ldc: bC, batch, strideA: M * N, strideB: aR * aC, strideC: shared ? 0 : bR * bC }
        : { ...common, transA: !transA, transB: false, M: K, N, K: M, a: a.data, lda: aC, b: dC, ldb: N, c: b.ensureGrad(), ldc: bC, batch, strideA: aR * aC, strideB: M * N, strideC: shared ? 0 : bR * bC };
      backend().gemm(g);
    }
  });
}
