import { gelu, relu } from '../tensor/ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';
import { Dropout } from './dropout.js';
import { Linear } from './linear.js';
import { Module } from './module.js';

export type Activation = 'relu' | 'gelu';

export interface FeedForwardConfig {
  d_model: number;
  d_ff: number;
  dropout: number;
  activation: Activation;
  bias?: boolean;
}

/** Position-wise feed-forward: widen to d_ff, ReLU (the paper) or GELU (GPT, ViT), project back. */
export class FeedForward extends Module {
  fc1: Linear;
  fc2: Linear;
  dropout: Dropout;
  readonly activation: Activation;

  constructor(cfg: FeedForwardConfig, rng: Rng) {
    super();
    const std = Math.sqrt(1 / cfg.d_model);
    this.fc1 = new Linear(cfg.d_model, cfg.d_ff, { bias: cfg.bias ?? true, std, rng });
    this.fc2 = new Linear(cfg.d_ff, cfg.d_model, { bias: cfg.bias ?? true, std: Math.sqrt(1 / cfg.d_ff), rng });
    this.dropout = new Dropout(cfg.dropout, rng);
    this.activation = cfg.activation;
  }

  forward(x: Tensor): Tensor {
    const h = this.fc1.forward(x);
    return this.fc2.forward(this.dropout.forward(this.activation === 'relu' ? relu(h) : gelu(h)));
  }
}
