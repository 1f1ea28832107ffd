import { gelu } from '../tensor/ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import type { AttentionConfig } from './attention.js';
import { Dropout } from './dropout.js';
import { Linear } from './linear.js';
import { Module } from './module.js';

/** The feed-forward part of a block: widen 4×, GELU, project back. Works on each position alone. */
export class MLP extends Module {
  c_fc: Linear;
  c_proj: Linear;
  dropout: Dropout;

  constructor(cfg: AttentionConfig, rng: Rng) {
    super();
    this.c_fc = new Linear(cfg.n_embd, 4 * cfg.n_embd, { bias: cfg.bias, std: 0.02, rng });
    this.c_proj = new Linear(4 * cfg.n_embd, cfg.n_embd, { bias: cfg.bias, std: 0.02 / Math.sqrt(2 * cfg.n_layer), rng });
    this.dropout = new Dropout(cfg.dropout, rng);
  }

  forward(x: Tensor): Tensor {
    return this.dropout.forward(this.c_proj.forward(gelu(this.c_fc.forward(x))));
  }
}
