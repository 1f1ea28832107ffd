import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';
import { logSumExp } from './label_smoothing.js';

/**
 * Knowledge distillation's loss (Hinton et al. 2015): how far a student's
 * distribution q = softmax(logits) is from a teacher's p, row by row, as the
 * Kullback–Leibler divergence KL(p ‖ q) = Σ p·(log p − log q), averaged over
 * the rows. It is the cross-entropy against the teacher's whole distribution
 * (soft targets) minus the teacher's own entropy, a constant for the student:
 * so the gradient is the same softmax(logits) − p as cross-entropy's, with p
 * in place of the one-hot target. A one-hot p gives plain cross-entropy.
 *
 * Why a draft model for speculative decoding is trained this way: what counts
 * is how often it proposes what the target would pick, and the target's
 * distribution at every position says that far better than the one token the
 * text happens to continue with.
 *
 * logits [..., V]; teacher: the same number of rows of V probabilities each
 * (every row summing to 1).
 */
export function distillationLoss(logits: Tensor, teacher: Float32Array): Tensor {
  const V = logits.shape[logits.rank - 1]!;
  const rows = logits.size / V;
  if (teacher.length !== logits.size) throw new Error(`distillationLoss: ${teacher.length / V} teacher rows for ${rows} rows of logits`);
  const q = new Float32Array(logits.size);
  let total = 0;
  for (let r = 0; r < rows; r++) total += klRow(teacher.subarray(r * V, (r + 1) * V), logits.data.subarray(r * V, (r + 1) * V), q.subarray(r * V, (r + 1) * V));
  const out = Tensor.from([rows > 0 ? total / rows : 0], []);
  return record(out, [logits], 'distillationLoss', () => {
    if (rows === 0) return;
    const g = logits.ensureGrad();
    const scale = out.grad![0]! / rows;
    for (let i = 0; i < logits.size; i++) g[i] += (q[i]! - teacher[i]!) * scale;
  });
}

/** One row: fills q with softmax(z) and returns KL(p ‖ q), with log q = z − logsumexp(z); terms where p = 0 add nothing. */
function klRow(p: Float32Array, z: Float32Array, q: Float32Array): number {
  const lse = logSumExp(z);
  let kl = 0;
  for (let v = 0; v < z.length; v++) {
    q[v] = Math.exp(z[v]! - lse);
    if (p[v]! > 0) kl += p[v]! * (Math.log(p[v]!) - (z[v]! - lse));
  }
  return kl;
}
