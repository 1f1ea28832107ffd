import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { isHost, type Storage } from '../../backend/storage.js';
import { Tensor, copyStorage, numel, type Shape } from '../tensor.js';

/** Same values, new shape (one dimension may be −1 and is inferred). */
export function reshape(x: Tensor, shape: Shape): Tensor {
  const known = shape.filter((s) => s !== -1).reduce((p, q) => p * q, 1);
  const resolved = shape.map((s) => (s === -1 ? x.size / known : s));
  if (numel(resolved) !== x.size) throw new Error(`cannot reshape [${x.shape}] to [${shape}]`);
  // Shares storage with x: reshaping never copies.
  const out = new Tensor(x.storage, resolved);
  return record(out, [x], 'reshape', () => {
    const g = x.ensureGradStorage();
    backend().binary('add', g, resolved, out.gradStorage!, resolved, g, resolved);
  });
}

function strides(shape: Shape): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let d = shape.length - 2; d >= 0; d--) s[d] = s[d + 1]! * shape[d + 1]!;
  return s;
}

/** Gather `src` viewed through `perm` (a permutation of axes) into a new contiguous array. */
function permuteData(src: Float32Array, shape: Shape, perm: number[], dst: Float32Array, accumulate: boolean): void {
  const inStr = strides(shape);
  const outShape = perm.map((p) => shape[p]!);
  const walk = perm.map((p) => inStr[p]!);
  const rank = outShape.length;
  const idx = new Array<number>(rank).fill(0);
  let off = 0;
  for (let o = 0; o < dst.length; o++) {
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

/** Swap two axes (copies into a contiguous layout). */
export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  const rank = x.rank;
  const a = d0 < 0 ? d0 + rank : d0;
  const b = d1 < 0 ? d1 + rank : d1;
  const perm = x.shape.map((_, i) => i);
  perm[a] = b;
  perm[b] = a;
  const out = Tensor.empty(perm.map((p) => x.shape[p]!));
  permuteData(x.data, x.shape, perm, out.data, false);
  return record(out, [x], 'transpose', () => {
    // A swap is its own inverse.
    permuteData(out.grad!, out.shape, perm, x.ensureGrad(), true);
  });
}

/** Copy blocks between two tensors that differ only along `axis` (used by slice and concat). */
function copyAlongAxis(
  src: Storage, srcShape: Shape, srcStart: number,
  dst: Storage, dstShape: Shape, dstStart: number,
  len: number, axis: number, accumulate: boolean,
): void {
  // Plain copies work on any storage (a device records one copy per block); sums only on host arrays (gradients).
  if (accumulate && !(isHost(src) && isHost(dst))) throw new Error('copyAlongAxis: accumulating needs host arrays');
  const outer = srcShape.slice(0, axis).reduce((p, q) => p * q, 1);
  const inner = srcShape.slice(axis + 1).reduce((p, q) => p * q, 1);
  const srcRow = srcShape[axis]! * inner;
  const dstRow = dstShape[axis]! * inner;
  const block = len * inner;
  for (let o = 0; o < outer; o++) {
    const s = o * srcRow + srcStart * inner;
    const d = o * dstRow + dstStart * inner;
    if (accumulate) for (let i = 0; i < block; i++) (dst as Float32Array)[d + i] = (dst as Float32Array)[d + i]! + (src as Float32Array)[s + i]!;
    else copyStorage(src, s, dst, d, block);
  }
}

/** x[..., start:end, ...] along `axis`. */
export function slice(x: Tensor, axis: number, start: number, end: number): Tensor {
  const a = axis < 0 ? axis + x.rank : axis;
  if (start < 0 || end > x.shape[a]! || start > end) throw new Error(`slice ${start}:${end} out of range for axis of size ${x.shape[a]}`);
  const shape = [...x.shape];
  shape[a] = end - start;
  const out = Tensor.empty(shape);
  copyAlongAxis(x.storage, x.shape, start, out.storage, shape, 0, end - start, a, false);
  return record(out, [x], 'slice', () => {
    copyAlongAxis(out.grad!, shape, 0, x.ensureGrad(), x.shape, start, end - start, a, true);
  });
}

/** Join tensors along `axis`; all other dims must agree. */
export function concat(xs: Tensor[], axis: number): Tensor {
  const first = xs[0];
  if (!first) throw new Error('concat needs at least one tensor');
  const a = axis < 0 ? axis + first.rank : axis;
  const shape = [...first.shape];
  shape[a] = xs.reduce((s, t) => s + t.shape[a]!, 0);
  const out = Tensor.empty(shape);
  let at = 0;
  const starts: number[] = [];
  for (const t of xs) {
    if (t.rank !== first.rank || t.shape.some((s, i) => i !== a && s !== first.shape[i])) {
      throw new Error(`concat: shapes [${first.shape}] and [${t.shape}] differ outside axis ${axis}`);
    }
    starts.push(at);
    copyAlongAxis(t.data, t.shape, 0, out.data, shape, at, t.shape[a]!, a, false);
    at += t.shape[a]!;
  }
  return record(out, xs, 'concat', () => {
    xs.forEach((t, i) => {
      if (t.requiresGrad) copyAlongAxis(out.grad!, shape, starts[i]!, t.ensureGrad(), t.shape, 0, t.shape[a]!, a, true);
    });
  });
}

/** Cut `x` into equal parts along `axis` (e.g. q, k, v from one projection). */
export function split(x: Tensor, parts: number, axis: number): Tensor[] {
  const a = axis < 0 ? axis + x.rank : axis;
  const size = x.shape[a]! / parts;
  if (!Number.isInteger(size)) throw new Error(`cannot split axis of size ${x.shape[a]} into ${parts} parts`);
  return Array.from({ length: parts }, (_, i) => slice(x, a, i * size, (i + 1) * size));
}
