import type { Parameter } from './module.js';

/**
 * One contiguous allocation for all parameters, one for all their gradients
 * (llm.c's layout). Each Parameter keeps working as before — its data and
 * grad become views into the arenas — but whole-model operations (AdamW,
 * zeroing gradients) become one pass over one array. Parameters are laid out
 * in two groups, weight-decayed matrices first, so each group is one span.
 */
export class ParameterArena {
  readonly data: Float32Array;
  readonly grad: Float32Array;
  /** Offsets of each named parameter in the arenas. */
  readonly offsets = new Map<string, number>();
  /** [begin, end) of the parameters with rank ≥ 2 (decayed) and of the rest. */
  readonly decayed: [number, number];
  readonly undecayed: [number, number];

  constructor(params: Array<[string, Parameter]>) {
    const ordered = [...params.filter(([, p]) => p.rank >= 2), ...params.filter(([, p]) => p.rank < 2)];
    const total = ordered.reduce((n, [, p]) => n + p.size, 0);
    this.data = new Float32Array(total);
    this.grad = new Float32Array(total);
    let at = 0;
    let split = 0;
    for (const [name, p] of ordered) {
      if (p.rank >= 2) split = at + p.size;
      this.data.set(p.data, at);
      p.data = this.data.subarray(at, at + p.size);
      if (p.grad) this.grad.set(p.grad, at);
      p.grad = this.grad.subarray(at, at + p.size);
      this.offsets.set(name, at);
      at += p.size;
    }
    this.decayed = [0, split];
    this.undecayed = [split, total];
  }
}
