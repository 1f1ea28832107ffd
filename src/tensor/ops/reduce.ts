import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor, allocStorage, releaseStorage, uploadForPass, type Shape } from '../tensor.js';

function normAxis(axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) throw new Error(`axis ${axis} out of range for rank ${rank}`);
  return a;
}

/** Sum over one axis (or all values when axis is undefined). */
export function sum(x: Tensor, axis?: number, keepDim = false): Tensor {
  const kept: Shape = axis === undefined ? x.shape.map(() => 1) : x.shape.map((s, i) => (i === normAxis(axis, x.rank) ? 1 : s));
  const outShape = axis === undefined ? (keepDim ? kept : []) : keepDim ? kept : kept.filter((_, i) => i !== normAxis(axis, x.rank));
  const out = Tensor.zeros(outShape);
  backend().reduceSumTo(x.storage, x.shape, out.storage, kept);
  return record(out, [x], 'sum', () => {
    // Every input element contributed once: broadcast the gradient back.
    const g = x.ensureGradStorage();
    backend().binary('add', g, x.shape, out.gradStorage!, kept, g, x.shape);
  });
}

export function mean(x: Tensor, axis?: number, keepDim = false): Tensor {
  const n = axis === undefined ? x.size : x.shape[normAxis(axis, x.rank)]!;
  const s = sum(x, axis, keepDim);
  const out = Tensor.zeros(s.shape);
  backend().binary('mul', s.storage, s.shape, uploadForPass(Float32Array.of(1 / n)), s.shape.map(() => 1), out.storage, s.shape);
  return record(out, [s], 'mean', () => {
    // ds += dout / n
    const g = s.ensureGradStorage();
    const be = backend();
    const dsN = allocStorage(g.length, false);
    be.binary('mul', out.gradStorage!, s.shape, uploadForPass(Float32Array.of(1 / n)), s.shape.map(() => 1), dsN, s.shape);
    be.binary('add', g, s.shape, dsN, s.shape, g, s.shape);
    releaseStorage(dsN);
  });
}
