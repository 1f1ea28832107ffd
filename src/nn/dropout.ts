import { dropout } from '../tensor/ops/dropout.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { Module } from './module.js';

/** Zeroes a random fraction p of activations while training, so no unit can be relied on alone. */
export class Dropout extends Module {
  constructor(readonly p: number, private readonly rng: Rng) {
    super();
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.rng, this.training);
  }

  /** Whether forward changes anything (training, with p > 0); otherwise it is the identity. */
  get active(): boolean {
    return this.training && this.p > 0;
  }
}
