import type { EpilogueActivation, GemmArgs } from './backend.js';
import type { Storage } from './storage.js';

/**
 * A small builder for the backend's GEMM record, so that an op reads like
 * its formula: `gemmArgs({ M, N, K }, mat(y, N), mat(x, K), matT(w, K))` is
 * "y = x·wᵀ", instead of nineteen named fields. The record itself
 * (backend.ts's GemmArgs) stays what the backends take.
 */

/** One matrix operand as stored: row-major `data` with row stride `ld`, read as is or transposed. */
export interface Matrix<F extends Storage = Storage> {
  data: F;
  /** Elements between consecutive stored rows. */
  ld: number;
  /** Where the (first) matrix starts in `data`. */
  offset: number;
  /** In a batched product, elements between consecutive matrices; 0: the same matrix for every entry. */
  stride: number;
  /** Read as its transpose: op(M) = Mᵀ. */
  transposed: boolean;
}

export interface Placement {
  offset?: number;
  stride?: number;
}

// Both build the record field by field: a spread with an overridden field ({ ...m, transposed }) makes V8
// keep the object as a dictionary, microseconds to build and slow to read, on every product.
/** The matrix as stored. */
export const mat = <F extends Storage>(data: F, ld: number, at: Placement = {}): Matrix<F> => ({ data, ld, offset: at.offset ?? 0, stride: at.stride ?? 0, transposed: false });

/** The matrix read transposed (its stored rows are the columns of op(M)). */
export const matT = <F extends Storage>(data: F, ld: number, at: Placement = {}): Matrix<F> => ({ data, ld, offset: at.offset ?? 0, stride: at.stride ?? 0, transposed: true });

export interface GemmOptions<F extends Storage = Storage> {
  /** C = alpha·op(A)·op(B); 1 by default. */
  alpha?: number;
  /** Add into C instead of overwriting it (gradients accumulate). */
  accumulate?: boolean;
  /** Matrices in the batch (each operand's `stride` apart); 1 by default. */
  batch?: number;
  /** A length-N vector added to every row of C. */
  bias?: F | null;
  /** Round A and B to bfloat16, sum in FP32 (mixed-precision training). */
  bf16?: boolean;
  /** Applied to each element as C is stored, after the bias: C = act(…). */
  activation?: EpilogueActivation | null;
  /** A matrix shaped like C added last (a residual connection): C = … + addend. */
  addend?: Matrix<F> | null;
}

/** C (M×N) = act(alpha·op(A)·op(B) (+ C when accumulating) (+ bias)) (+ addend), op(A) M×K and op(B) K×N. */
export function gemmArgs<F extends Storage>(dims: { M: number; N: number; K: number }, c: Matrix<F>, a: Matrix<F>, b: Matrix<F>, o: GemmOptions<F> = {}): GemmArgs<F> {
  if (c.transposed) throw new Error('gemmArgs: the output C is written as stored, not transposed');
  if (o.addend?.transposed) throw new Error('gemmArgs: the addend is read as stored, like C, not transposed');
  const activation = o.activation ?? null;
  const addend = o.addend ? { data: o.addend.data, offset: o.addend.offset, ld: o.addend.ld, stride: o.addend.stride } : null;
  return {
    transA: a.transposed,
    transB: b.transposed,
    M: dims.M,
    N: dims.N,
    K: dims.K,
    a: a.data,
    aOffset: a.offset,
    lda: a.ld,
    b: b.data,
    bOffset: b.offset,
    ldb: b.ld,
    c: c.data,
    cOffset: c.offset,
    ldc: c.ld,
    alpha: o.alpha ?? 1,
    accumulate: o.accumulate ?? false,
    batch: o.batch ?? 1,
    strideA: a.stride,
    strideB: b.stride,
    strideC: c.stride,
    bias: o.bias ?? null,
    ...(o.bf16 ? { bf16: true } : {}), // absent means FP32, as in records written before mixed precision
    ...(activation || addend ? { epilogue: { activation, addend } } : {}),
  };
}
