import { backend } from '../../backend/index.js';
import type { BinaryOp, UnaryOp } from '../../backend/backend.js';
import { record } from '../autograd.js';
import type { Storage } from '../../backend/storage.js';
import { Tensor, allocStorage, copyStorage, releaseStorage, sameShape, type Shape } from '../tensor.js';

/** NumPy broadcasting: align shapes on the right; sizes must match or be 1. */
export function broadcastShape(a: Shape, b: Shape): Shape {
  const rank = Math.max(a.length, b.length);
  const out: Shape = [];
  for (let i = 0; i < rank; i++) {
    const x = a[a.length - rank + i] ?? 1;
    const y = b[b.length - rank + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`cannot broadcast [${a}] with [${b}]`);
    out.push(Math.max(x, y));
  }
  return out;
}

function padTo(shape: Shape, rank: number): Shape {
  return [...new Array<number>(rank - shape.length).fill(1), ...shape];
}

/**
 * The gradient w.r.t. a broadcast input is the output gradient summed over
 * the broadcast axes. `from`: the op's output, whose gradient `grad` is, when
 * this is the last use of it in the op's backward pass: a t with no gradient
 * yet then takes that storage as its own instead of a copy (the output's
 * gradient is spent once its op's backward pass is done; on a GPU, a copy
 * ends the compute pass).
 */
export function accumulateReduced(grad: Storage, outShape: Shape, t: Tensor, from: Tensor | null = null): void {
  if (!t.requiresGrad) return;
  if (sameShape(t.shape, outShape)) {
    if (from && from.gradStorage === grad && !t.gradStorage) {
      t.gradStorage = grad;
      from.gradStorage = null;
      return;
    }
    const sink = t.gradSink();
    if (sink.accumulate) backend().binary('add', sink.grad, outShape, grad, outShape, sink.grad, outShape);
    else copyStorage(grad, 0, sink.grad, 0, grad.length);
  } else {
    const g = t.ensureGradStorage();
    backend().reduceSumTo(grad, outShape, g, padTo(t.shape, outShape.length));
  }
}

function binaryOp(op: BinaryOp, a: Tensor, b: Tensor): Tensor {
  const shape = broadcastShape(a.shape, b.shape);
  const out = Tensor.empty(shape);
  const be = backend();
  be.binary(op, a.storage, padTo(a.shape, shape.length), b.storage, padTo(b.shape, shape.length), out.storage, shape);
  return record(out, [a, b], op, () => {
    const dy = out.gradStorage!;
    let scratch: Storage | null = null;
    const tmp = () => (scratch ??= allocStorage(dy.length, false)); // add needs none
    const full = (x: Tensor) => padTo(x.shape, shape.length);
    switch (op) {
      case 'add':
        accumulateReduced(dy, shape, a);
        accumulateReduced(dy, shape, b, out); // the last use of dy
        break;
      case 'sub':
        accumulateReduced(dy, shape, a);
        if (b.requiresGrad) {
          be.unary('neg', dy, tmp());
          accumulateReduced(tmp(), shape, b);
        }
        break;
      case 'mul':
        if (a.requiresGrad) {
          be.binary('mul', dy, shape, b.storage, full(b), tmp(), shape);
          accumulateReduced(tmp(), shape, a);
        }
        if (b.requiresGrad) {
          be.binary('mul', dy, shape, a.storage, full(a), tmp(), shape);
          accumulateReduced(tmp(), shape, b);
        }
        break;
      case 'div':
        // d(a/b)/da = 1/b ; d(a/b)/db = −(a/b)/b
        if (a.requiresGrad) {
          be.binary('div', dy, shape, b.storage, full(b), tmp(), shape);
          accumulateReduced(tmp(), shape, a);
        }
        if (b.requiresGrad) {
          be.binary('mul', dy, shape, out.storage, shape, tmp(), shape);
          be.binary('div', tmp(), shape, b.storage, full(b), tmp(), shape);
          be.unary('neg', tmp(), tmp());
          accumulateReduced(tmp(), shape, b);
        }
        break;
    }
    if (scratch) releaseStorage(scratch);
  });
}

export const add = (a: Tensor, b: Tensor): Tensor => binaryOp('add', a, b);
export const sub = (a: Tensor, b: Tensor): Tensor => binaryOp('sub', a, b);
export const mul = (a: Tensor, b: Tensor): Tensor => binaryOp('mul', a, b);
export const div = (a: Tensor, b: Tensor): Tensor => binaryOp('div', a, b);

/** Multiply by a constant (no gradient flows to the constant). */
export function scale(x: Tensor, s: number): Tensor {
  return mul(x, Tensor.from([s]));
}

export function unaryOp(op: UnaryOp, x: Tensor): Tensor {
  const out = Tensor.empty(x.shape);
  backend().unary(op, x.storage, out.storage);
  return record(out, [x], op, () => {
    const dx = x.gradSink();
    backend().unaryBackward(op, x.storage, out.storage, out.gradStorage!, dx.grad, dx.accumulate);
  });
}

export const exp = (x: Tensor): Tensor => unaryOp('exp', x);
export const log = (x: Tensor): Tensor => unaryOp('log', x);
export const relu = (x: Tensor): Tensor => unaryOp('relu', x);
export const tanh = (x: Tensor): Tensor => unaryOp('tanh', x);
export const sqrt = (x: Tensor): Tensor => unaryOp('sqrt', x);
export const neg = (x: Tensor): Tensor => unaryOp('neg', x);
/** SiLU (swish), x·σ(x): the gate of Llama's SwiGLU MLP. */
export const silu = (x: Tensor): Tensor => unaryOp('silu', x);
/** GELU, tanh approximation (GPT-2's "gelu_new"). */
export const gelu = (x: Tensor): Tensor => unaryOp('gelu', x);
