import { backend } from '../../backend/index.js';
import { gemmArgs, mat, matT } from '../../backend/gemm_args.js';
import { record } from '../autograd.js';
import { matmulPrecision } from '../precision.js';
import { Tensor } from '../tensor.js';

/**
 * y = x·Wᵀ + b with W stored [out, in] as in PyTorch's nn.Linear. Every
 * leading axis of x is treated as rows, so a [B, T, C] activation is one
 * [B·T, C] matrix product rather than B small ones.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const inF = weight.shape[1]!;
  const outF = weight.shape[0]!;
  if (x.shape[x.rank - 1] !== inF) throw new Error(`linear: input [${x.shape}] does not match weight [${weight.shape}]`);
  const rows = x.size / inF;
  const out = Tensor.empty([...x.shape.slice(0, -1), outF]);
  const be = backend();
  // Mixed precision (precision.ts): all three products of this layer, forward and backward, in bf16.
  const bf16 = matmulPrecision() === 'bf16';
  // y = x·Wᵀ + b
  be.gemm(gemmArgs({ M: rows, N: outF, K: inF }, mat(out.storage, outF), mat(x.storage, inF), matT(weight.storage, inF), { bias: bias?.storage ?? null, bf16 }));
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(out, inputs, 'linear', () => {
    const dy = out.gradStorage!;
    if (x.requiresGrad) {
      // dx = dy·W
      const dx = x.gradSink();
      be.gemm(gemmArgs({ M: rows, N: inF, K: outF }, mat(dx.grad, inF), mat(dy, outF), mat(weight.storage, inF), { accumulate: dx.accumulate, bf16 }));
    }
    if (weight.requiresGrad) {
      // dW += dyᵀ·x
      be.gemm(gemmArgs({ M: outF, N: inF, K: rows }, mat(weight.ensureGradStorage(), inF), matT(dy, outF), mat(x.storage, inF), { accumulate: true, bf16 }));
    }
    if (bias?.requiresGrad) be.reduceSumTo(dy, [rows, outF], bias.ensureGradStorage(), [1, outF]);
  });
}
