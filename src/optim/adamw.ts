import { backend } from '../backend/index.js';
import { isHost, type Storage } from '../backend/storage.js';
import { ParameterArena } from '../nn/arena.js';
import { allocStorage, fillStorage, viewStorage } from '../tensor/tensor.js';
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
  /** First and second moment estimates, laid out like the arena, in the backend's storage. */
  readonly mAll: Storage;
  readonly vAll: Storage;
  step = 0;

  constructor(params: Array<[string, Parameter]>, public options: AdamWOptions) {
    this.params = params;
    this.arena = new ParameterArena(params);
    this.mAll = allocStorage(this.arena.data.length, true);
    this.vAll = allocStorage(this.arena.data.length, true);
  }

  /** Per-parameter views of the first moments by name (host arrays: throws on a device backend until read). */
  get m(): Map<string, Float32Array> {
    return (this.mViews ??= this.views(this.mAll));
  }

  get v(): Map<string, Float32Array> {
    return (this.vViews ??= this.views(this.vAll));
  }

  private mViews?: Map<string, Float32Array>;
  private vViews?: Map<string, Float32Array>;

  private views(all: Storage): Map<string, Float32Array> {
    return new Map(this.params.map(([n, p]) => {
      const view = viewStorage(all, this.arena.offsets.get(n)!, p.size);
      if (!isHost(view)) throw new Error('AdamW moments live on the device: read them with readState() first');
      return [n, view];
    }));
  }

  /** Zero every gradient: one pass over the arena (PyTorch's optimizer.zero_grad()). */
  zeroGrad(): void {
    fillStorage(this.arena.grad, 0);
  }

  /** Apply one update with learning rate `lr` (the schedule's value for this step). */
  update(lr = this.options.lr): void {
    this.step++;
    const be = backend();
    const { data, grad, decayed, undecayed } = this.arena;
    const span = (s: Storage, b: number, e: number) => viewStorage(s, b, e - b);
    const spans: Array<[[number, number], number]> = [[decayed, this.options.weightDecay], [undecayed, 0]];
    for (const [[b, e], weightDecay] of spans) {
      if (e <= b) continue;
      be.adamwStep(span(data, b, e), span(grad, b, e), span(this.mAll, b, e), span(this.vAll, b, e), {
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
