import { backend } from '../backend/index.js';
import { ParameterArena } from '../nn/arena.js';
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
 * LayerNorm gains are left undecayed. The parameters are moved into one
 * arena (see ParameterArena), so a step is two fused updates — decayed and
 * undecayed spans — instead of one per tensor.
 */
export class AdamW {
  readonly params: Array<[string, Parameter]>;
  readonly arena: ParameterArena;
  /** First and second moment estimates, laid out like the arena; per-parameter views by name. */
  readonly m: Map<string, Float32Array>;
  readonly v: Map<string, Float32Array>;
  private readonly mAll: Float32Array;
  private readonly vAll: Float32Array;
  step = 0;

  constructor(params: Array<[string, Parameter]>, public options: AdamWOptions) {
    this.params = params;
    this.arena = new ParameterArena(params);
    this.mAll = new Float32Array(this.arena.data.length);
    this.vAll = new Float32Array(this.arena.data.length);
    const view = (all: Float32Array, name: string, size: number) => all.subarray(this.arena.offsets.get(name)!, this.arena.offsets.get(name)! + size);
    this.m = new Map(params.map(([n, p]) => [n, view(this.mAll, n, p.size)]));
    this.v = new Map(params.map(([n, p]) => [n, view(this.vAll, n, p.size)]));
  }

  /** Zero every gradient: one pass over the arena (PyTorch's optimizer.zero_grad()). */
  zeroGrad(): void {
    this.arena.grad.fill(0);
  }

  /** Apply one update with learning rate `lr` (the schedule's value for this step). */
  update(lr = this.options.lr): void {
    this.step++;
    const be = backend();
    const { data, grad, decayed, undecayed } = this.arena;
    const spans: Array<[[number, number], number]> = [[decayed, this.options.weightDecay], [undecayed, 0]];
    for (const [[b, e], weightDecay] of spans) {
      if (e <= b) continue;
      be.adamwStep(data.subarray(b, e), grad.subarray(b, e), this.mAll.subarray(b, e), this.vAll.subarray(b, e), {
        lr,
        beta1: this.options.beta1,
        beta2: this.options.beta2,
        eps: this.options.eps,
        weightDecay,
        step: this.step,
      });
    }
  }
}
