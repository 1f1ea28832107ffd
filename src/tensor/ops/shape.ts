import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { accumulateReduced } from './elementwise.js';
import type { Storage } from '../../backend/storage.js';
import { Tensor, numel, type Shape } from '../tensor.js';

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

/** Swap two axes (copies into a contiguous layout). */
export function transpose(x: Tensor, d0: number, d1: number): Tensor {
  const rank = x.rank;
  const a = d0 < 0 ? d0 + rank : d0;
  const b = d1 < 0 ? d1 + rank : d1;
  const perm = x.shape.map((_, i) => i);
  perm[a] = b;
  perm[b] = a;
  const out = Tensor.empty(perm.map((p) => x.shape[p]!));
  const be = backend();
  be.permute(x.storage, x.shape, perm, out.storage, false);
  return record(out, [x], 'transpose', () => {
    // A swap is its own inverse.
    const dx = x.gradSink();
    be.permute(out.gradStorage!, out.shape, perm, dx.grad, dx.accumulate);
  });
}

/** Copy (or add) blocks between two tensors that differ only along `axis` (slice and concat): one strided copy on the backend. */
function copyAlongAxis(
  src: Storage, srcShape: Shape, srcStart: number,
  dst: Storage, dstShape: Shape, dstStart: number,
  len: number, axis: number, accumulate: boolean,
): void {
  const outer = srcShape.slice(0, axis).reduce((p, q) => p * q, 1);
  const inner = srcShape.slice(axis + 1).reduce((p, q) => p * q, 1);
  const layout = { rows: outer, cols: len * inner, srcOffset: srcStart * inner, srcStride: srcShape[axis]! * inner, dstOffset: dstStart * inner, dstStride: dstShape[axis]! * inner };
  if (layout.rows * layout.cols > 0) backend().copyRows(src, dst, layout, accumulate);
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
    copyAlongAxis(out.gradStorage!, shape, 0, x.ensureGradStorage(), x.shape, start, end - start, a, true);
  });
}

/**
 * n copies of x [1, …] stacked along the first axis: [n, …] (one class token
 * for every image of a batch). The gradient is the copies' gradients summed.
 */
export function repeatRows(x: Tensor, n: number): Tensor {
  if (x.shape[0] !== 1) throw new Error(`repeatRows expects [1, …], got [${x.shape}]`);
  const shape = [n, ...x.shape.slice(1)];
  const out = Tensor.empty(shape);
  backend().copyRows(x.storage, out.storage, { rows: n, cols: x.size, srcOffset: 0, srcStride: 0, dstOffset: 0, dstStride: x.size }, false);
  return record(out, [x], 'repeatRows', () => accumulateReduced(out.gradStorage!, shape, x));
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
    copyAlongAxis(t.storage, t.shape, 0, out.storage, shape, at, t.shape[a]!, a, false);
    at += t.shape[a]!;
  }
  return record(out, xs, 'concat', () => {
    xs.forEach((t, i) => {
      if (t.requiresGrad) copyAlongAxis(out.gradStorage!, shape, starts[i]!, t.ensureGradStorage(), t.shape, 0, t.shape[a]!, a, true);
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
