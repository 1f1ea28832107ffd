import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

export interface CrossEntropyOptions {
  /** Targets equal to this are skipped (padding). Default −1. */
  ignoreIndex?: number;
}

/**
 * Mean negative log-likelihood of `targets` under softmax(logits), fused with
 * log-softmax. logits [..., V]; targets has one id per row of logits.
 */
export function crossEntropy(logits: Tensor, targets: Int32Array, opts: CrossEntropyOptions = {}): Tensor {
  const ignoreIndex = opts.ignoreIndex ?? -1;
  const vocab = logits.shape[logits.rank - 1]!;
  const rows = logits.size / vocab;
  if (targets.length !== rows) throw new Error(`crossEntropy: ${targets.length} targets for ${rows} rows of logits`);
  for (const t of targets) {
    if (t !== ignoreIndex && (t < 0 || t >= vocab)) throw new Error(`crossEntropy: target ${t} outside vocabulary of ${vocab}`);
  }
  const lse = new Float32Array(rows);
  const be = backend();
  const { sum, count } = be.crossEntropyForward(logits.data, targets, lse, rows, vocab, ignoreIndex);
  const out = Tensor.from([count > 0 ? sum / count : 0], []);
  return record(out, [logits], 'crossEntropy', () => {
    if (count === 0) return;
    const d = logits.gradSink();
    be.crossEntropyBackward(logits.data, targets, lse, d.grad, rows, vocab, ignoreIndex, out.grad![0]! / count, d.accumulate);
  });
}
