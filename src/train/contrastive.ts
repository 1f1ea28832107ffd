import { crossEntropy } from '../tensor/ops/cross_entropy.js';
import { add, scale } from '../tensor/ops/elementwise.js';
import { l2Normalize } from '../tensor/ops/l2_normalize.js';
import { matmul } from '../tensor/ops/matmul.js';
import { slice, transpose } from '../tensor/ops/shape.js';
import { Tensor } from '../tensor/tensor.js';

export interface ContrastiveOptions {
  /** Softmax temperature τ: cosine similarities are divided by it (small τ = sharp). */
  temperature: number;
  /** Also score each positive against every anchor (the transposed matrix), averaging both directions. */
  symmetric: boolean;
}

/** Added to a masked logit: exp of it is 0 in fp32 beside any cosine / temperature. */
export const MASKED = -1e4;

/**
 * InfoNCE with in-batch negatives: anchors [B, D] and positives [B, D], row i
 * of each a matching pair. Every other positive in the batch is a negative
 * for anchor i, so the loss is a B-way classification whose right answer is
 * the diagonal of the cosine-similarity matrix.
 *
 * With hard negatives, `positives` has B + M rows: the B positives, then M
 * extra negatives that are a negative for every anchor (DPR's hard negatives,
 * shared across the batch); `mask` [B, B + M], when given, is added to the
 * scaled logits (0, or MASKED where a column must not count for that
 * anchor: a negative about the anchor's own document). The symmetric term
 * (each positive against every anchor) uses the first B columns only.
 */
export function infoNCE(anchors: Tensor, positives: Tensor, o: ContrastiveOptions, mask?: Float32Array): Tensor {
  const B = anchors.shape[0]!;
  const C = positives.shape[0]!;
  if (C < B) throw new Error(`infoNCE: ${C} positives for ${B} anchors`);
  if (mask && mask.length !== B * C) throw new Error(`infoNCE: mask of ${mask.length} for ${B}×${C} logits`);
  const diagonal = Int32Array.from({ length: B }, (_, i) => i);
  const scaled = scale(matmul(l2Normalize(anchors), l2Normalize(positives), { transB: true }), 1 / o.temperature);
  const logits = mask ? add(scaled, Tensor.from(mask, [B, C])) : scaled;
  const forward = crossEntropy(logits, diagonal);
  if (!o.symmetric) return forward;
  const square = C === B ? logits : slice(logits, 1, 0, B);
  return scale(add(forward, crossEntropy(transpose(square, 0, 1), diagonal)), 0.5);
}

export interface MatryoshkaLoss {
  loss: Tensor;
  /** The InfoNCE term at each prefix dimension, in the order of `dims` (one-element tensors: read them where the backend keeps values). */
  perDim: Tensor[];
}

/**
 * Matryoshka representation learning (Kusupati et al. 2022): the same
 * InfoNCE applied to the first d components of the embeddings for each d in
 * `dims`, summed. Every prefix is trained to be an embedding on its own, so
 * the first components come to carry the most information.
 */
export function matryoshkaInfoNCE(anchors: Tensor, positives: Tensor, dims: readonly number[], o: ContrastiveOptions, mask?: Float32Array): MatryoshkaLoss {
  const full = anchors.shape[1]!;
  const terms = dims.map((d) => {
    if (d < 1 || d > full) throw new Error(`prefix dimension ${d} outside 1..${full}`);
    return d === full ? infoNCE(anchors, positives, o, mask) : infoNCE(slice(anchors, 1, 0, d), slice(positives, 1, 0, d), o, mask);
  });
  const loss = terms.slice(1).reduce((sum, t) => add(sum, t), terms[0]!);
  return { loss, perDim: terms };
}
