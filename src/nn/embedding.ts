import { embedding } from '../tensor/ops/embedding.js';
import type { TokenIds } from '../tensor/stored_ids.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { normalParameter } from './init.js';
import { Module, type Parameter } from './module.js';

/** A table of learned vectors, one per token id (or per position). */
export class Embedding extends Module {
  weight: Parameter;

  constructor(count: number, dim: number, opts: { std: number; rng: Rng }) {
    super();
    this.weight = normalParameter([count, dim], opts.std, opts.rng);
  }

  forward(ids: TokenIds, shape: number[]): Tensor {
    return embedding(this.weight, ids, shape);
  }
}
