import type { Storage } from '../backend/storage.js';
import { allocStorage, copyStorage, toBackend, viewStorage } from '../tensor/tensor.js';
import type { Parameter } from './module.js';

/**
 * One contiguous allocation for all parameters, one for all their gradients
 * (llm.c's layout). Each Parameter keeps working as before — its data and
 * grad become views into the arenas — but whole-model operations (AdamW,
 * zeroing gradients, the gradient norm) become one pass over one array.
 * Parameters are laid out in two groups, weight-decayed matrices first, so
 * each group is one span.
 *
 * The arenas live in the current backend's storage: on a device backend,
 * building the arena is what moves the parameters onto the device.
 */
export class ParameterArena {
  readonly data: Storage;
  readonly grad: Storage;
  /** Offsets of each named parameter in the arenas. */
  readonly offsets = new Map<string, number>();
  /** [begin, end) of the parameters with rank ≥ 2 (decayed) and of the rest. */
  readonly decayed: [number, number];
  readonly undecayed: [number, number];

  constructor(params: Array<[string, Parameter]>) {
    const ordered = [...params.filter(([, p]) => p.rank >= 2), ...params.filter(([, p]) => p.rank < 2)];
    const total = ordered.reduce((n, [, p]) => n + p.size, 0);
    this.data = allocStorage(total, true);
    this.grad = allocStorage(total, true);
    let at = 0;
    let split = 0;
    for (const [name, p] of ordered) {
      if (p.rank >= 2) split = at + p.size;
      copyStorage(toBackend(p.storage), 0, this.data, at, p.size);
      p.storage = viewStorage(this.data, at, p.size);
      if (p.gradStorage) copyStorage(toBackend(p.gradStorage), 0, this.grad, at, p.size);
      p.gradStorage = viewStorage(this.grad, at, p.size);
      this.offsets.set(name, at);
      at += p.size;
    }
    this.decayed = [0, split];
    this.undecayed = [split, total];
  }
}
