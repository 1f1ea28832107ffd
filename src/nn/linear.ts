import { isGradEnabled } from '../tensor/autograd.js';
import { linear } from '../tensor/ops/linear.js';
import { linearInt8, type Int8Weight } from '../tensor/ops/linear_int8.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { constantParameter, normalParameter } from './init.js';
import { Module, type Parameter } from './module.js';

/** y = x·Wᵀ + b: every output is a weighted sum of every input (the article's "neurons"). */
export class Linear extends Module {
  weight: Parameter;
  bias: Parameter | null;
  /** Set by quantization (nn/int8.ts): inference then reads these int8 weights instead (same values). */
  int8: Int8Weight | null = null;

  constructor(inFeatures: number, outFeatures: number, opts: { bias: boolean; std: number; rng: Rng }) {
    super();
    this.weight = normalParameter([outFeatures, inFeatures], opts.std, opts.rng);
    this.bias = opts.bias ? constantParameter([outFeatures], 0) : null;
  }

  forward(x: Tensor): Tensor {
    // Int8 kernels record no gradient: a model being trained uses its fp32 weights.
    if (this.int8 && !isGradEnabled()) return linearInt8(x, this.int8, this.bias);
    return linear(x, this.weight, this.bias);
  }
}
