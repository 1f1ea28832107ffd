import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
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
  be.gemm({
    transA: false, transB: true, M: rows, N: outF, K: inF, a: x.data, aOffset: 0, lda: inF,
    b: weight.data, bOffset: 0, ldb: inF, c: out.data, cOffset: 0, ldc: outF, alpha: 1, accumulate: false,
    batch: 1, strideA: 0, strideB: 0, strideC: 0, bias: bias?.data ?? null,
  });
  const inputs = bias ? [x, weight, bias] : [x, weight];
  return record(out, inputs, 'linear', () => {
    const dy = out.grad!;
    const common = { aOffset: 0, bOffset: 0, cOffset: 0, alpha: 1, accumulate: true, batch: 1, strideA: 0, strideB: 0, strideC: 0 };
    if (x.requiresGrad) {
      // dx = dy·W
      const dx = x.gradSink();
      be.gemm({ ...common, accumulate: dx.accumulate, transA: false, transB: false, M: rows, N: inF, K: outF, a: dy, lda: outF, b: weight.data, ldb: inF, c: dx.grad, ldc: inF });
    }
    if (weight.requiresGrad) {
      // dW = dyᵀ·x
      be.gemm({ ...common, transA: true, transB: false, M: outF, N: inF, K: rows, a: dy, lda: outF, b: x.data, ldb: inF, c: weight.ensureGrad(), ldc: inF });
    }
    if (bias?.requiresGrad) be.reduceSumTo(dy, [rows, outF], bias.ensureGrad(), [1, outF]);
  });
}
