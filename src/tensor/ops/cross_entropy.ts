import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor, allocStorage, releaseStorage } from '../tensor.js';

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (padding). Default −1. */
  ignoreIndex?: number;
  /** Label smoothing ε: the share of the target's probability spread evenly over the vocabulary (label_smoothing.ts). Default 0. */
  smoothing?: number;
}

/**
 * Mean negative log-likelihood of `targets` under softmax(logits), fused with
 * log-softmax. logits [..., V]; targets has one id per row of logits.
 */
export function crossEntropy(logits: Tensor, targets: Int32Array, opts: CrossEntropyOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -1;
  const smoothing = opts.smoothing ?? 0;
  if (!(smoothing >= 0 && smoothing < 1)) throw new Error(`label smoothing must be in [0, 1), got ${smoothing}`);
  const vocab = logits.shape[logits.rank - 1]!;
  const rows = logits.size / vocab;
  if (targets.length !== rows) throw new Error(`crossEntropy: ${targets.length} targets for ${rows} rows of logits`);
  let count = 0;
  for (const t of targets) {
    if (t === ignoreIndex) continue;
    if (t < 0 || t >= vocab) throw new Error(`crossEntropy: target ${t} outside vocabulary of ${vocab}`);
    count++;
  }
  const lse = allocStorage(rows, false);
  const be = backend();
  // The mean over counted rows (0 when every row is ignored), written where the backend keeps values.
  const out = Tensor.empty([]);
  be.crossEntropyForward(logits.storage, targets, lse, out.storage, rows, vocab, ignoreIndex, count > 0 ? 1 / count : 0, smoothing);
  return record(out, [logits], 'crossEntropy', () => {
    if (count > 0) {
      const d = logits.gradSink();
      be.crossEntropyBackward(logits.storage, targets, lse, out.gradStorage!, d.grad, rows, vocab, ignoreIndex, 1 / count, d.accumulate, smoothing);
    }
    // Spent (the backward runs once): back to the pool.
    releaseStorage(lse);
  });
}
