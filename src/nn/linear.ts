import { isGradEnabled } from '../tensor/autograd.js';
import { activationLinear, type InputOnlyActivation } from '../tensor/ops/activation_linear.js';
import { applyEpilogue, linear, type LinearEpilogue } from '../tensor/ops/linear.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { constantParameter, normalParameter } from './init.js';
import { Module, type Parameter } from './module.js';

/** y = x·Wᵀ + b: every output is a weighted sum of every input (the article's "neurons"). */
export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;

  /** New random weights (std, rng), or given ones (dequantizing a QuantizedLinear back for training). */
  constructor(inFeatures: number, outFeatures: number, opts: { bias: boolean; std: number; rng: Rng } | { weight: Parameter; bias: Parameter | null }) {
    super();
    if ('weight' in opts) {
      if (opts.weight.shape.join() !== [outFeatures, inFeatures].join()) throw new Error(`Linear(${inFeatures}, ${outFeatures}) given a weight of shape [${opts.weight.shape}]`);
      this.weight = opts.weight;
      this.bias = opts.bias;
      return;
    }
    this.weight = normalParameter([outFeatures, inFeatures], opts.std, opts.rng);
    this.bias = opts.bias ? constantParameter([outFeatures], 0) : null;
  }

  /** `then`: an activation or an addend (the residual stream) applied as the product stores y. A subclass must honour it (LoRALinear, PanelLinear do). */
  forward(x: Tensor, then: LinearEpilogue = {}): Tensor {
    return linear(x, this.weight, this.bias, then);
  }

  /** forward(x, then) honours `then` (see forwardThen). */
  get takesEpilogue(): true {
    return true;
  }

  /**
   * forward(act(u)) (+ addend) while training, as one op that keeps act(u)
   * for the backward pass only when this layer's weight trains (a frozen down
   * projection under LoRA does not need it).
   */
  forwardActivated(u: Tensor, act: InputOnlyActivation, addend: Tensor | null = null): Tensor {
    return activationLinear(u, act, this.weight, this.bias, addend);
  }
}

/** A layer whose forward takes `then` and honours it: Linear (and its subclasses), QuantizedLinear, BlockQuantizedLinear. */
export interface TakesEpilogue {
  readonly takesEpilogue: true;
  forward(x: Tensor, then?: LinearEpilogue): Tensor;
}

/**
 * layer(x) followed by `then`: the layer's own forward where it takes `then`
 * (folding what its product can into the product), else ops of their own.
 */
export function forwardThen(layer: { forward(x: Tensor): Tensor }, x: Tensor, then: LinearEpilogue): Tensor {
  return (layer as Partial<TakesEpilogue>).takesEpilogue ? (layer as TakesEpilogue).forward(x, then) : applyEpilogue(layer.forward(x), then);
}

/**
 * For a product that records no gradient (the int8 and block-quantized
 * ones): `product(then)`, the epilogue folded in, unless the addend wants a
 * gradient (then the product, and the epilogue as ops that record it).
 */
export function inferenceProduct(then: LinearEpilogue, product: (then: LinearEpilogue) => Tensor): Tensor {
  return isGradEnabled() && then.addend?.requiresGrad ? applyEpilogue(product({}), then) : product(then);
}
