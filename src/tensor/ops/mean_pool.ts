import { backend } from '../../backend/index.js';
import { gemmArgs, mat, matT } from '../../backend/gemm_args.js';
import { record } from '../autograd.js';
import { Tensor, releaseStorage, toBackend } from '../tensor.js';

/**
 * Masked mean over positions: x [B, T, C] → [B, C], each row the average of
 * its non-padding positions (padding: B·T flags, 1 = padding). A padded
 * sentence must embed exactly as it would alone, so padding neither adds to
 * the sum nor to the count. A row that is all padding pools to zeros.
 *
 * With w[b, t] = 1/count for real positions and 0 for padding, the pool is
 * a batch of B products out[b] = w[b]·x[b] ([1, T]·[T, C]) and its gradient
 * dx[b] += w[b]ᵀ·dy[b] ([T, 1]·[1, C]): two GEMMs, so every backend (the GPU
 * too) runs it with the kernel it already has.
 */
export function meanPool(x: Tensor, padding?: Uint8Array, tokenWeights?: Float32Array): Tensor {
  if (x.rank !== 3) throw new Error(`meanPool expects [B, T, C], got [${x.shape}]`);
  const [B, T, C] = x.shape as [number, number, number];
  if (padding && padding.length !== B * T) throw new Error(`padding mask has ${padding.length} flags, expected ${B}×${T}`);
  if (tokenWeights && tokenWeights.length !== B * T) throw new Error(`token weights have ${tokenWeights.length} entries, expected ${B}×${T}`);
  const weights = toBackend(poolWeights(padding, B, T, tokenWeights));
  const out = Tensor.empty([B, C]);
  const be = backend();
  // out[b] = w[b]·x[b]
  be.gemm(gemmArgs({ M: 1, N: C, K: T }, mat(out.storage, C, { stride: C }), mat(weights, T, { stride: T }), mat(x.storage, C, { stride: T * C }), { batch: B }));
  record(out, [x], 'meanPool', () => {
    const dx = x.gradSink();
    // dx[b] (+)= w[b]ᵀ·dy[b]
    be.gemm(gemmArgs({ M: T, N: C, K: 1 }, mat(dx.grad, C, { stride: T * C }), matT(weights, T, { stride: T }), mat(out.gradStorage!, C, { stride: C }), { batch: B, accumulate: dx.accumulate }));
    releaseStorage(weights);
  });
  // The weights are kept for the backward; without one (no gradients) they are spent now.
  if (!out.gradFn) releaseStorage(weights);
  return out;
}

/**
 * 1/count for each real position, 0 for padding: the pool is then a weighted
 * sum. With token weights (≥ 0, one per position), each real position's
 * share is its weight over the row's total instead: a weighted mean. A row
 * whose real positions all weigh 0 falls back to the plain mean.
 */
function poolWeights(padding: Uint8Array | undefined, B: number, T: number, tokenWeights?: Float32Array): Float32Array {
  const w = new Float32Array(B * T);
  for (let b = 0; b < B; b++) {
    let count = 0;
    let total = 0;
    for (let t = 0; t < T; t++) {
      if (padding?.[b * T + t]) continue;
      count++;
      total += tokenWeights ? tokenWeights[b * T + t]! : 1;
    }
    const weighted = tokenWeights !== undefined && total > 0;
    for (let t = 0; t < T; t++) {
      const i = b * T + t;
      w[i] = count === 0 || padding?.[i] ? 0 : weighted ? tokenWeights[i]! / total : 1 / count;
    }
  }
  return w;
}
