import type { RowsLayout } from '../backend.js';

/**
 * The copies that change a tensor's layout (tensor/ops/shape.ts): a
 * permutation of axes (transpose) and a strided block copy (slice and concat
 * along an axis), each writing or, for gradients, adding.
 */

/** Row-major strides of a shape (elements between consecutive indices of each axis). */
export function strides(shape: readonly number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1]! * shape[d + 1]!;
  return s;
}

/** dst (+)= src [shape] viewed through `perm` (a permutation of its axes), laid out contiguously: dst's axis i is src's axis perm[i]. */
export function permute(src: Float32Array, shape: readonly number[], perm: readonly number[], dst: Float32Array, accumulate: boolean): void {
  const inStr = strides(shape);
  const outShape = perm.map((p) => shape[p]!);
  const walk = perm.map((p) => inStr[p]!);
  const rank = outShape.length;
  const idx = new Array<number>(rank).fill(0);
  const n = outShape.reduce((p, q) => p * q, 1);
  let off = 0;
  for (let o = 0; o < n; o++) {
    dst[o] = accumulate ? dst[o]! + src[off]! : src[off]!;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      off += walk[d]!;
      if (idx[d]! < outShape[d]!) break;
      off -= walk[d]! * outShape[d]!;
      idx[d] = 0;
    }
  }
}

/** dst[dstOffset + r·dstStride + i] (+)= src[srcOffset + r·srcStride + i] for r < rows, i < cols. */
export function copyRows(src: Float32Array, dst: Float32Array, l: RowsLayout, accumulate: boolean): void {
  for (let r = 0; r < l.rows; r++) {
    const s = l.srcOffset + r * l.srcStride;
    const d = l.dstOffset + r * l.dstStride;
    if (!accumulate) dst.set(src.subarray(s, s + l.cols), d);
    else for (let i = 0; i < l.cols; i++) dst[d + i] = dst[d + i]! + src[s + i]!;
  }
}
