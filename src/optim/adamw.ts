import { backend } from '../backend/index.js';
import type { Parameter } from '../nn/module.js';

export interface AdamWOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

/**
 * AdamW over a model's named parameters. Following GPT-2/nanoGPT, weight decay
 * applies only to matrices (≥ 2-D: linear weights and embeddings); biases and
 * LayerNorm gains are left undecayed.
 */
export class AdamW {
  readonly params: Array<[string, Parameter]>;
  /** First and second moment estimates, one pair per parameter. */
  readonly m: Map<string, Float32Array>;
  readonly v: Map<string, Float32Array>;
  step = 0;

  constructor(params: Array<[string, Parameter]>, public options: AdamWOptions) {
    this.params = params;
    this.m = new Map(params.map(([n, p]) => [n, new Float32Array(p.size)]));
    this.v = new Map(params.map(([n, p]) => [n, new Float32Array(p.size)]));
  }

  /** Apply one update with learning rate `lr` (the schedule's value for this step). */
  update(lr = this.options.lr): void {
    this.step++;
    const be = backend();
    for (const [name, p] of this.params) {
      if (!p.grad) continue;
      be.adamwStep(p.data, p.grad, this.m.get(name)!, this.v.get(name)!, {
        lr,
        beta1: this.options.beta1,
        beta2: this.options.beta2,
        eps: this.options.eps,
        weightDecay: p.rank >= 2 ? this.options.weightDecay : 0,
        step: this.step,
      });
    }
  }
}
