import { linear } from '../tensor/ops/linear.js';
import type { Tensor } from '../tensor/tensor.js';
import { Module, type Parameter } from './module.js';

/**
 * An output head that reuses another layer's matrix ("weight tying": GPT-2
 * scores the next token with its token embedding table). It owns no
 * parameter: the matrix is reached through `weightOf`, so it is listed (and
 * saved, and updated) once, under the embedding's name.
 */
export class TiedLinear extends Module {
  constructor(private readonly weightOf: () => Parameter) {
    super();
  }

  get weight(): Parameter {
    return this.weightOf();
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weightOf());
  }
}
