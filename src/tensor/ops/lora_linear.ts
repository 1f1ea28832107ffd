import { backend } from '../../backend/index.js';
import type { Storage } from '../../backend/storage.js';
import { gemmArgs, mat, matT } from '../../backend/gemm_args.js';
import { record } from '../autograd.js';
import { Tensor, allocStorage, releaseStorage } from '../tensor.js';

/**
 * A linear layer with a LoRA adapter, as one op:
 *
 *   y = x·Wᵀ + b + s·(u·Aᵀ)·Bᵀ        W [out, in], A [r, in], B [out, r], s = alpha/r
 *
 * where u is the adapter's input (x itself, or dropout(x) while training).
 * Composed from linear + scale + add this would keep three [rows, out]
 * tensors (and their gradients) per layer; here the adapter's product is
 * added into y as it is computed, and only the narrow h = s·u·Aᵀ [rows, r]
 * is kept for the backward pass. Backward, with g = dy·B [rows, r]:
 *
 *   dB = dyᵀ·h    dA = s·gᵀ·u    du = s·g·A    dx = dy·W    dW = dyᵀ·x    db = Σ dy
 *
 * each computed only when its tensor needs a gradient (a frozen base costs
 * no dW product: the point of LoRA).
 */
export function loraLinear(x: Tensor, weight: Tensor, bias: Tensor | null, u: Tensor, A: Tensor, B: Tensor, s: number): Tensor {
  const [outF, inF] = weight.shape as [number, number];
  const r = A.shape[0]!;
  if (x.shape[x.rank - 1] !== inF || u.size !== x.size) throw new Error(`loraLinear: input [${x.shape}] does not match weight [${weight.shape}]`);
  if (A.shape[1] !== inF || B.shape[0] !== outF || B.shape[1] !== r) throw new Error(`loraLinear: adapter A [${A.shape}], B [${B.shape}] do not fit weight [${weight.shape}]`);
  const rows = x.size / inF;
  const out = Tensor.empty([...x.shape.slice(0, -1), outF]);
  const h = allocStorage(rows * r, false);
  const be = backend();
  be.gemm(gemmArgs({ M: rows, N: outF, K: inF }, mat(out.storage, outF), mat(x.storage, inF), matT(weight.storage, inF), { bias: bias?.storage ?? null })); // y = x·Wᵀ + b
  be.gemm(gemmArgs({ M: rows, N: r, K: inF }, mat(h, r), mat(u.storage, inF), matT(A.storage, inF), { alpha: s })); // h = s·u·Aᵀ
  be.gemm(gemmArgs({ M: rows, N: outF, K: r }, mat(out.storage, outF), mat(h, r), matT(B.storage, r), { accumulate: true })); // y += h·Bᵀ
  const inputs = [x, weight, ...(bias ? [bias] : []), ...(u === x ? [] : [u]), A, B];
  return record(out, inputs, 'loraLinear', () => {
    const dy = out.gradStorage!;
    if (B.requiresGrad) be.gemm(gemmArgs({ M: outF, N: r, K: rows }, mat(B.ensureGradStorage(), r), matT(dy, outF), mat(h, r), { accumulate: true })); // dB += dyᵀ·h
    let g: Storage | null = null;
    if (A.requiresGrad || u.requiresGrad) {
      g = allocStorage(rows * r, false);
      be.gemm(gemmArgs({ M: rows, N: r, K: outF }, mat(g, r), mat(dy, outF), mat(B.storage, r))); // g = dy·B
    }
    if (A.requiresGrad) be.gemm(gemmArgs({ M: r, N: inF, K: rows }, mat(A.ensureGradStorage(), inF), matT(g!, r), mat(u.storage, inF), { alpha: s, accumulate: true })); // dA += s·gᵀ·u
    if (x.requiresGrad) {
      const dx = x.gradSink();
      be.gemm(gemmArgs({ M: rows, N: inF, K: outF }, mat(dx.grad, inF), mat(dy, outF), mat(weight.storage, inF), { accumulate: dx.accumulate })); // dx = dy·W
    }
    if (u.requiresGrad) {
      const du = u.gradSink();
      be.gemm(gemmArgs({ M: rows, N: inF, K: r }, mat(du.grad, inF), mat(g!, r), mat(A.storage, inF), { alpha: s, accumulate: du.accumulate })); // du += s·g·A
    }
    if (weight.requiresGrad) be.gemm(gemmArgs({ M: outF, N: inF, K: rows }, mat(weight.ensureGradStorage(), inF), matT(dy, outF), mat(x.storage, inF), { accumulate: true })); // dW += dyᵀ·x
    if (bias?.requiresGrad) be.reduceSumTo(dy, [rows, outF], bias.ensureGradStorage(), [1, outF]);
    if (g) releaseStorage(g);
    releaseStorage(h);
  });
}
