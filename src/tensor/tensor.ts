import { takeUninitialized, takeZeroed } from './buffer_pool.js';

/**
 * A Tensor is a flat Float32Array plus a shape (row-major), and — when it was
 * computed from tensors that need gradients — a record of how: its inputs and
 * a function that pushes its gradient back to them. Following those records
 * from the loss backwards is reverse-mode automatic differentiation.
 */
export type Shape = number[];

export interface GradFn {
  inputs: Tensor[];
  /** Reads this tensor's .grad and adds the contribution to each input's .grad. */
  backward: () => void;
  name: string;
}

export class Tensor {
  data: Float32Array;
  readonly shape: Shape;
  grad: Float32Array | null = null;
  requiresGrad: boolean;
  gradFn: GradFn | null = null;

  constructor(data: Float32Array, shape: Shape, requiresGrad = false) {
    const n = numel(shape);
    if (data.length !== n) throw new Error(`tensor data has ${data.length} values but shape [${shape}] needs ${n}`);
    this.data = data;
    this.shape = [...shape];
    this.requiresGrad = requiresGrad;
  }

  static zeros(shape: Shape, requiresGrad = false): Tensor {
    return new Tensor(takeZeroed(numel(shape)), shape, requiresGrad);
  }

  /**
   * A tensor whose values are whatever its recycled buffer held: for an op's
   * output that its kernel overwrites in full, where zeroing is wasted work.
   */
  static empty(shape: Shape, requiresGrad = false): Tensor {
    return new Tensor(takeUninitialized(numel(shape)), shape, requiresGrad);
  }

  static from(values: ArrayLike<number>, shape?: Shape, requiresGrad = false): Tensor {
    return new Tensor(Float32Array.from(values), shape ?? [values.length], requiresGrad);
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.data.length !== 1) throw new Error(`item() needs one element, tensor has shape [${this.shape}]`);
    return this.data[0]!;
  }

  /** The gradient buffer, created as zeros on first use (gradients accumulate). */
  ensureGrad(): Float32Array {
    if (!this.grad) this.grad = takeZeroed(this.data.length);
    return this.grad;
  }

  /**
   * Where a backward step puts its contribution to this gradient: the first
   * contribution overwrites a fresh buffer (accumulate false, no zeroing
   * pass); later ones add into it. For kernels that can do either.
   */
  gradSink(): { grad: Float32Array; accumulate: boolean } {
    if (this.grad) return { grad: this.grad, accumulate: true };
    this.grad = takeUninitialized(this.data.length);
    return { grad: this.grad, accumulate: false };
  }

  zeroGrad(): void {
    if (this.grad) this.grad.fill(0);
  }

  /** A tensor sharing this data but cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.data, this.shape);
  }
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}
