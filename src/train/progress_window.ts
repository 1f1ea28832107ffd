import { backend } from '../backend/index.js';
import { allocStorage, readStorage, releaseStorage, type Tensor } from '../tensor/tensor.js';
import { argmaxRows, countMatches } from './class_scores.js';
import type { LoopStep } from './loop.js';

/** What a progress line reports: the mean over the steps since the last one. */
export interface WindowMeans {
  /** Mean training loss per example. */
  loss: number;
  /** Share of the examples the model got right (for classifiers that count them with `right`). */
  accuracy: number;
  /** Examples (images, clouds, …) per second of training. */
  itemsPerSecond: number;
}

/**
 * The running sums behind a trainer's progress line, printed every
 * `logInterval` steps: the loss weighted by examples, the examples the model
 * got right (a classifier's objective adds to `right` as it goes), and the
 * time, so the line is the mean of the window, not of one noisy step.
 */
export class ProgressWindow {
  right = 0;
  private loss = 0;
  private lossItems = 0;
  private items = 0;
  private seconds = 0;

  constructor(private readonly logInterval: number, private readonly maxSteps: number) {}

  /** Add one step; true when a progress line is due (every logInterval steps, and at the last). */
  add(p: Pick<LoopStep, 'step' | 'loss' | 'read' | 'items' | 'seconds'>): boolean {
    // On a device only some steps' losses are read back: the mean is over those (at least the step that prints).
    if (p.read) {
      this.loss += p.loss * p.items;
      this.lossItems += p.items;
    }
    this.items += p.items;
    this.seconds += p.seconds;
    return p.step % this.logInterval === 0 || p.step === this.maxSteps;
  }

  /**
   * A classifier's step: add the rows of `logits` [rows, classes] whose
   * largest score is the label. On a host the scores are counted at once;
   * on a device the device picks each row's class and the read is not
   * awaited (the step stays queued): it resolves, in queue order, before the
   * loss read that prints the progress line.
   */
  countRight(logits: Tensor, labels: ArrayLike<number>, classes: number): void {
    if (backend().device === undefined) {
      this.right += countMatches(argmaxRows(logits.data, classes), labels);
      return;
    }
    const picked = allocStorage(labels.length, false);
    backend().argmaxRows(logits.storage, labels.length, classes, picked);
    void readStorage(picked).then((p) => {
      this.right += countMatches(p, labels);
      releaseStorage(picked);
    });
  }

  /** The window's means; the window starts again. */
  take(): WindowMeans {
    const means = { loss: this.loss / this.lossItems, accuracy: this.right / this.items, itemsPerSecond: this.items / this.seconds };
    this.loss = this.lossItems = this.right = this.items = this.seconds = 0;
    return means;
  }
}
