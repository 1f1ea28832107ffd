import { rmsNorm } from '../tensor/ops/rmsnorm.js';
import type { Tensor } from '../tensor/tensor.js';
import { constantParameter } from './init.js';
import { Module, type Parameter } from './module.js';

/**
 * Root-mean-square normalisation (Llama's norm): divide each position's
 * vector by its RMS, then rescale by a learned weight. Cheaper than
 * LayerNorm (no mean, no bias) and, in practice, as good.
 */
export class RMSNorm extends Module {
  weight: Parameter;
  readonly eps: number;

  constructor(dim: number, opts: { eps?: number } = {}) {
    super();
    this.weight = constantParameter([dim], 1);
    this.eps = opts.eps ?? 1e-6;
  }

  forward(x: Tensor): Tensor {
    return rmsNorm(x, this.weight, this.eps);
  }
}
