import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor, sameShape } from '../tensor.js';

/**
 * SwiGLU's gated product (Llama's MLP): silu(gate) ∘ up, with silu(g) = g·σ(g),
 * in one pass. Composed from silu and mul it would make a silu(gate) array
 * as large as the hidden layer (5632 values per token at TinyLlama's size)
 * only to read it once; fused, the only new array is the result, and the
 * backward recomputes σ(gate) instead of keeping it.
 */
export function swiglu(gate: Tensor, up: Tensor): Tensor {
  if (!sameShape(gate.shape, up.shape)) throw new Error(`swiglu: gate [${gate.shape}] and up [${up.shape}] differ in shape`);
  const out = Tensor.empty(gate.shape);
  const be = backend();
  be.swigluForward(gate.storage, up.storage, out.storage);
  return record(out, [gate, up], 'swiglu', () => {
    const dg = gate.requiresGrad ? gate.gradSink() : null;
    const du = up.requiresGrad ? up.gradSink() : null;
    be.swigluBackward(gate.storage, up.storage, out.gradStorage!, dg?.grad ?? null, du?.grad ?? null, dg?.accumulate ?? false, du?.accumulate ?? false);
  });
}
