import { layerNorm } from '../tensor/ops/layernorm.js';
import type { Tensor } from '../tensor/tensor.js';
import { constantParameter } from './init.js';
import { Module, type Parameter } from './module.js';

/** Normalise each position's vector to mean 0, variance 1, then rescale: keeps deep stacks trainable. */
export class LayerNorm extends Module {
  weight: Parameter;
  bias: Parameter | null;
  readonly eps: number;

  constructor(dim: number, opts: { bias: boolean; eps?: number }) {
    super();
    this.weight = constantParameter([dim], 1);
    this.bias = opts.bias ? constantParameter([dim], 0) : null;
    this.eps = opts.eps ?? 1e-5;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.weight, this.bias, this.eps);
  }
}
