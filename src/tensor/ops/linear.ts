import { backend } from '../../backend/index.js';
import { gemmArgs, mat, matT } from '../../backend/gemm_args.js';
import type { EpilogueActivation, ProductEpilogue } from '../../backend/backend.js';
import { isGradEnabled, record } from '../autograd.js';
import { matmulPrecision } from '../precision.js';
import { sameShape, Tensor } from '../tensor.js';
import { accumulateReduced, add, unaryOp } from './elementwise.js';

/** What a Linear layer's product may do as it stores y (backend.ts's GemmEpilogue). */
export interface LinearEpilogue {
  /** y = act(x·Wᵀ + b): a feed-forward's up projection. */
  activation?: EpilogueActivation | null;
  /** y = … + addend, a tensor of y's shape: a sublayer's residual connection. */
  addend?: Tensor | null;
}

/**
 * The backend's epilogue record of an inference-only product (int8, block-quantized: they record no
 * gradient), checking the addend's shape; null when there is nothing to do.
 */
export function productEpilogue(op: string, out: Tensor, then: LinearEpilogue): ProductEpilogue | null {
  const addend = then.addend ?? null;
  if (addend && !sameShape(addend.shape, out.shape)) throw new Error(`${op}: addend [${addend.shape}] is not the output's shape [${out.shape}]`);
  return then.activation || addend ? { activation: then.activation ?? null, addend: addend?.storage ?? null } : null;
}

/** The epilogue as ops of their own on a layer's output y (layers whose product cannot store it: LoRA's). */
export function applyEpilogue(y: Tensor, then: LinearEpilogue): Tensor {
  if (then.activation) y = unaryOp(then.activation, y);
  return then.addend ? add(y, then.addend) : y;
}

/**
 * y = x·Wᵀ + b with W stored [out, in] as in PyTorch's nn.Linear. Every
 * leading axis of x is treated as rows, so a [B, T, C] activation is one
 * [B·T, C] matrix product rather than B small ones.
 *
 * `then` folds the next step into the product's store: an activation, or the
 * residual stream added back (y = skip + x·Wᵀ + b, whose gradient passes dy to
 * skip unchanged). An activation is folded only where no gradient is
 * recorded, since its backward pass needs x·Wᵀ + b, which the fold never
 * stores; in training it is the two ops it replaces.
 */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null, then: LinearEpilogue = {}): Tensor {
  const inF = weight.shape[1]!;
  const outF = weight.shape[0]!;
  if (x.shape[x.rank - 1] !== inF) throw new Error(`linear: input [${x.shape}] does not match weight [${weight.shape}]`);
  const activation = then.activation ?? null;
  const addend = then.addend ?? null;
  const inputs = bias ? [x, weight, bias] : [x, weight];
  if (activation && isGradEnabled() && inputs.some((t) => t.requiresGrad)) return applyEpilogue(linear(x, weight, bias), then);
  const rows = x.size / inF;
  const out = Tensor.empty([...x.shape.slice(0, -1), outF]);
  if (addend && !sameShape(addend.shape, out.shape)) throw new Error(`linear: addend [${addend.shape}] is not the output's shape [${out.shape}]`);
  const be = backend();
  // Mixed precision (precision.ts): all three products of this layer, forward and backward, in bf16.
  const bf16 = matmulPrecision() === 'bf16';
  // y = act(x·Wᵀ + b) + addend
  be.gemm(gemmArgs({ M: rows, N: outF, K: inF }, mat(out.storage, outF), mat(x.storage, inF), matT(weight.storage, inF), { bias: bias?.storage ?? null, bf16, activation, addend: addend && mat(addend.storage, outF) }));
  return record(out, addend ? [...inputs, addend] : inputs, 'linear', () => {
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
    // d(addend) = dy, the last use of dy: handed over when the addend has no gradient yet
    if (addend) accumulateReduced(dy, out.shape, addend, out);
  });
}
