import { backend } from '../../backend/index.js';
import { record } from '../autograd.js';
import { Tensor, type Shape } from '../tensor.js';

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
  backend().reduceSumTo(x.data, x.shape, out.data, kept);
  return record(out, [x], 'sum', () => {
    // Every input element contributed once: broadcast the gradient back.
    const g = x.ensureGrad();
    backend().binary('add', g, x.shape, out.grad!, kept, g, x.shape);
  });
}

export function mean(x: Tensor, axis?: number, keepDim = false): Tensor {
  const n = axis === undefined ? x.size : x.shape[normAxis(axis, x.rank)]!;
  const s = sum(x, axis, keepDim);
  const out = Tensor.zeros(s.shape);
  backend().binary('mul', s.data, s.shape, Float32Array.of(1 / n), s.shape.map(() => 1), out.data, s.shape);
  return record(out, [s], 'mean', () => {
    const g = s.ensureGrad();
    for (let i = 0; i < g.length; i++) g[i] = g[i]! + out.grad![i]! / n;
  });
}
