import { backend } from '../backend/index.js';
import type { Storage } from '../backend/storage.js';
import type { ParameterArena } from '../nn/arena.js';
import { allocStorage, copyStorage, releaseStorage } from '../tensor/tensor.js';

/**
 * Which average of the weights a run keeps:
 *   - `ema`: an exponential moving average, avg ← avg + (1 − decay)·(w − avg)
 *     after every step (Polyak averaging; the horizon is about 1/(1 − decay) steps);
 *   - `tail`: the plain mean of the weights after every step from the share
 *     `from` of the run onwards (stochastic weight averaging's "last part").
 */
export type AverageRule = { kind: 'ema'; decay: number } | { kind: 'tail'; from: number };

/**
 * An average of the weights along a run, kept beside the weights AdamW
 * trains. Late in a run each step's weights jitter around a minimum with the
 * noise of their mini-batch; their average sits nearer its centre, so it is
 * evaluated (and saved) instead of the last weights. Both rules are one
 * update, avg ← avg + c·(w − avg): c = 1 − decay for the EMA, c = 1/n for the
 * mean of n steps. It runs through the backend's element-wise ops over the
 * whole parameter arena (three passes), so it works on every backend.
 */
export class WeightAverage {
  /** The average, laid out like the arena. */
  readonly values: Storage;
  /** Steps folded in so far (0: no average yet, the weights themselves stand in). */
  count: number;

  constructor(private readonly arena: ParameterArena, readonly rule: AverageRule, start?: { values: Storage; count: number }) {
    this.values = allocStorage(arena.data.length, false);
    copyStorage(start?.values ?? arena.data, 0, this.values, 0, arena.data.length);
    this.count = start?.count ?? 0;
  }

  /** Fold in the weights after a step; `progress` is the share of the run done (for `tail`). */
  update(progress: number): void {
    if (this.rule.kind === 'tail' && progress < this.rule.from) return;
    this.count++;
    const n = this.arena.data.length;
    // The first step averaged is the average (copied: avg + 1·(w − avg) need not round back to w).
    if (this.count === 1) return copyStorage(this.arena.data, 0, this.values, 0, n);
    const c = this.rule.kind === 'ema' ? 1 - this.rule.decay : 1 / this.count;
    const be = backend();
    const diff = allocStorage(n, false);
    const sum = allocStorage(n, false);
    be.binary('sub', this.arena.data, [n], this.values, [n], diff, [n]);
    be.scaleInPlace(diff, c);
    // Into a second buffer, not in place: a device binds an op's inputs and output separately.
    be.binary('add', this.values, [n], diff, [n], sum, [n]);
    copyStorage(sum, 0, this.values, 0, n);
    releaseStorage(diff);
    releaseStorage(sum);
  }

  /**
   * Run f with the average in the model's parameters, then put the trained
   * weights back (after f's promise settles, for an asynchronous save). On a
   * device the swap is queued in order with f's work, so it is exact too.
   */
  withAveraged<T>(f: () => T): T {
    if (this.count === 0) return f();
    const n = this.arena.data.length;
    const trained = allocStorage(n, false);
    copyStorage(this.arena.data, 0, trained, 0, n);
    copyStorage(this.values, 0, this.arena.data, 0, n);
    const restore = (): void => {
      copyStorage(trained, 0, this.arena.data, 0, n);
      releaseStorage(trained);
    };
    let result: T;
    try {
      result = f();
    } catch (e) {
      restore();
      throw e;
    }
    if (result instanceof Promise) return result.finally(restore) as T;
    restore();
    return result;
  }
}

/** f run with the average in the weights when there is one, else as it is. */
export function withAverage<T>(average: WeightAverage | undefined, f: () => T): T {
  return average ? average.withAveraged(f) : f();
}
