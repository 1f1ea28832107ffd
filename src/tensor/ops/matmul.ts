import { backend } from '../../backend/index.js';
import { gemmArgs, mat, type Matrix } from '../../backend/gemm_args.js';
import { record } from '../autograd.js';
import type { Storage } from '../../backend/storage.js';
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
  // Each operand as stored, `stride` apart in the batch (0: one B shared by every entry); `t` reads it transposed.
  const A = (data: Storage, t: boolean): Matrix => ({ data, ld: aC, offset: 0, stride: aR * aC, transposed: t });
  const B = (data: Storage, t: boolean): Matrix => ({ data, ld: bC, offset: 0, stride: shared ? 0 : bR * bC, transposed: t });
  const dims = (m: number, n: number, k: number) => ({ M: m, N: n, K: k });
  // C = op(A)·op(B)
  backend().gemm(gemmArgs(dims(M, N, K), mat(out.storage, N, { stride: M * N }), A(a.storage, transA), B(b.storage, transB), { batch }));
  return record(out, [a, b], 'matmul', () => {
    const dC = out.gradStorage!;
    const dCAs = (t: boolean): Matrix => ({ ...mat(dC, N, { stride: M * N }), transposed: t });
    if (a.requiresGrad) {
      // dA += dC·op(B)ᵀ, or (for a stored transposed) op(B)·dCᵀ.
      const dA = A(a.ensureGradStorage(), false);
      backend().gemm(
        transA
          ? gemmArgs(dims(K, M, N), dA, B(b.storage, transB), dCAs(true), { batch, accumulate: true })
          : gemmArgs(dims(M, K, N), dA, dCAs(false), B(b.storage, !transB), { batch, accumulate: true }),
      );
    }
    if (b.requiresGrad) {
      // dB += op(A)ᵀ·dC, or (for b stored transposed) dCᵀ·op(A). A shared B sums over the batch.
      const dB = B(b.ensureGradStorage(), false);
      backend().gemm(
        transB
          ? gemmArgs(dims(N, K, M), dB, dCAs(true), A(a.storage, transA), { batch, accumulate: true })
          : gemmArgs(dims(K, N, M), dB, A(a.storage, !transA), dCAs(false), { batch, accumulate: true }),
      );
    }
  });
}
