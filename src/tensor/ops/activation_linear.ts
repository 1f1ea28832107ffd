import { backend } from '../../backend/index.js';
import type { UnaryOp } from '../../backend/backend.js';
import { gemmArgs, mat, matT } from '../../backend/gemm_args.js';
import { isGradEnabled, record } from '../autograd.js';
import { matmulPrecision } from '../precision.js';
import { Tensor, allocStorage, releaseStorage, sameShape } from '../tensor.js';
import { accumulateReduced } from './elementwise.js';

/** Activations whose derivative reads only their input (so backward needs u, not act(u)). */
export type InputOnlyActivation = Extract<UnaryOp, 'relu' | 'gelu' | 'silu'>;

/**
 * A feed-forward's activation and down projection as one op (training):
 *
 *   y = act(u)·Wᵀ + b (+ addend)     u [rows, in] (the up projection's output), W [out, in]
 *
 * Composed as gelu then linear, h = act(u) would stay alive from the forward
 * pass to the backward one although only W's gradient reads it
 * (dW = dyᵀ·h): du needs u, which the up projection keeps anyway. So h is
 * kept only when W needs a gradient (PyTorch's linear, too, saves its input
 * only then) and otherwise goes back to the pool right after the product.
 * With LoRA on c_attn and c_fc, GPT-2's c_proj is frozen, and a 124M model
 * at batch 4 × 256 no longer holds 12 × 12.6 MB of GELU outputs.
 *
 * The addend (the residual stream, in a block) is added as y is stored.
 *
 *   dh = dy·W    du = act'(u) ∘ dh    dW = dyᵀ·h    db = Σ dy    d(addend) = dy
 */
export function activationLinear(u: Tensor, act: InputOnlyActivation, weight: Tensor, bias: Tensor | null, addend: Tensor | null = null): Tensor {
  const [outF, inF] = weight.shape as [number, number];
  if (u.shape[u.rank - 1] !== inF) throw new Error(`activationLinear: input [${u.shape}] does not match weight [${weight.shape}]`);
  const rows = u.size / inF;
  const be = backend();
  // Mixed precision (precision.ts) applies to these products as to Linear's.
  const bf16 = matmulPrecision() === 'bf16';
  const h = allocStorage(u.size, false);
  be.unary(act, u.storage, h);
  const out = Tensor.empty([...u.shape.slice(0, -1), outF]);
  if (addend && !sameShape(addend.shape, out.shape)) throw new Error(`activationLinear: addend [${addend.shape}] is not the output's shape [${out.shape}]`);
  be.gemm(gemmArgs({ M: rows, N: outF, K: inF }, mat(out.storage, outF), mat(h, inF), matT(weight.storage, inF), { bias: bias?.storage ?? null, bf16, addend: addend && mat(addend.storage, outF) })); // y = h·Wᵀ + b (+ addend)
  // Outside a graph (inference) h is an ordinary temporary, left to the caller's pool scope.
  const keepH = weight.requiresGrad;
  if (isGradEnabled() && !keepH) releaseStorage(h);
  const inputs = [u, weight, ...(bias ? [bias] : []), ...(addend ? [addend] : [])];
  return record(out, inputs, 'activationLinear', () => {
    const dy = out.gradStorage!;
    if (u.requiresGrad) {
      const dh = allocStorage(u.size, false);
      be.gemm(gemmArgs({ M: rows, N: inF, K: outF }, mat(dh, inF), mat(dy, outF), mat(weight.storage, inF), { bf16 })); // dh = dy·W
      const du = u.gradSink();
      // The activation's output argument is unused by these activations' derivatives: u stands in when h was not kept.
      be.unaryBackward(act, u.storage, keepH ? h : u.storage, dh, du.grad, du.accumulate);
      releaseStorage(dh);
    }
    if (weight.requiresGrad) be.gemm(gemmArgs({ M: outF, N: inF, K: rows }, mat(weight.ensureGradStorage(), inF), matT(dy, outF), mat(h, inF), { accumulate: true, bf16 })); // dW += dyᵀ·h
    if (bias?.requiresGrad) be.reduceSumTo(dy, [rows, outF], bias.ensureGradStorage(), [1, outF]);
    if (addend) accumulateReduced(dy, out.shape, addend, out); // the last use of dy
    if (keepH) releaseStorage(h);
  });
}
