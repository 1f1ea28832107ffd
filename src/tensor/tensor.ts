import { backend } from '../backend/index.js';
import { DeviceValuesError, isHost, type Storage } from '../backend/storage.js';
import { giveBack, takeUninitialized, takeZeroed } from './buffer_pool.js';

/**
 * A Tensor is a flat array of values plus a shape (row-major), and — when it
 * was computed from tensors that need gradients — a record of how: its inputs
 * and a function that pushes its gradient back to them. Following those
 * records from the loss backwards is reverse-mode automatic differentiation.
 *
 * The values are a Storage (backend/storage.ts): on a host backend a
 * Float32Array, which `data` and `grad` give out directly; on a device
 * backend the backend's handle, which ops pass along untouched and which
 * `await read()` brings to the host. Ops use `storage` and `gradStorage`;
 * code that indexes values uses `data` and `grad` (host tensors only).
 */
export type Shape = number[];

export interface GradFn {
  inputs: Tensor[];
  /** Reads this tensor's .grad and adds the contribution to each input's .grad. */
  backward: () => void;
  name: string;
}

export class Tensor {
  /** The values, where the backend that made them keeps them. */
  storage: Storage;
  readonly shape: Shape;
  /** The gradient, like storage; null until a backward pass reaches this tensor. */
  gradStorage: Storage | null = null;
  requiresGrad: boolean;
  gradFn: GradFn | null = null;

  constructor(data: Storage, shape: Shape, requiresGrad = false) {
    const n = numel(shape);
    if (data.length !== n) throw new Error(`tensor data has ${data.length} values but shape [${shape}] needs ${n}`);
    this.storage = data;
    this.shape = [...shape];
    this.requiresGrad = requiresGrad;
  }

  /** The values as a host array (throws DeviceValuesError on a device tensor: use `await read()`). */
  get data(): Float32Array {
    return hostArray(this.storage, 'tensor.data');
  }

  set data(values: Storage) {
    this.storage = values;
  }

  /** The gradient as a host array, or null (throws on a device tensor's gradient). */
  get grad(): Float32Array | null {
    return this.gradStorage && hostArray(this.gradStorage, 'tensor.grad');
  }

  set grad(values: Storage | null) {
    this.gradStorage = values;
  }

  /** The values on the host, wherever they live (waits for the device's queued work). */
  async read(): Promise<Float32Array> {
    return readStorage(this.storage);
  }

  /** Zeros, in the current backend's storage. */
  static zeros(shape: Shape, requiresGrad = false): Tensor {
    return new Tensor(allocStorage(numel(shape), true), shape, requiresGrad);
  }

  /**
   * A tensor whose values are whatever its recycled buffer held: for an op's
   * output that its kernel overwrites in full, where zeroing is wasted work.
   */
  static empty(shape: Shape, requiresGrad = false): Tensor {
    return new Tensor(allocStorage(numel(shape), false), shape, requiresGrad);
  }

  /** Values from the host, in the current backend's storage (uploaded to a device backend). */
  static from(values: ArrayLike<number>, shape?: Shape, requiresGrad = false): Tensor {
    return new Tensor(uploadForPass(Float32Array.from(values)), shape ?? [values.length], requiresGrad);
  }

  get size(): number {
    return this.storage.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new Error(`item() needs one element, tensor has shape [${this.shape}]`);
    return hostArray(this.storage, 'item()')[0]!;
  }

  /** The gradient as a host array, created as zeros on first use (gradients accumulate). */
  ensureGrad(): Float32Array {
    return hostArray(this.ensureGradStorage(), 'tensor.ensureGrad()');
  }

  /** The gradient's storage, created as zeros on first use: what ops accumulate into. */
  ensureGradStorage(): Storage {
    return (this.gradStorage ??= allocStorage(this.size, true));
  }

  /**
   * Where a backward step puts its contribution to this gradient: the first
   * contribution overwrites a fresh buffer (accumulate false, no zeroing
   * pass); later ones add into it. For kernels that can do either.
   */
  gradSink(): { grad: Storage; accumulate: boolean } {
    if (this.gradStorage) return { grad: this.gradStorage, accumulate: true };
    this.gradStorage = allocStorage(this.size, false);
    return { grad: this.gradStorage, accumulate: false };
  }

  zeroGrad(): void {
    if (this.gradStorage) fillStorage(this.gradStorage, 0);
  }

  /** A tensor sharing this data but cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape);
  }
}

/*
 * Storage through the current backend. A host backend has no `device`: its
 * arrays come from the buffer pool and are used in place, as they always
 * were. A device backend allocates, fills and frees its own memory.
 */

/** n floats in the current backend's storage; zeroed, or left as recycled (for outputs written in full). */
export function allocStorage(n: number, zeroed: boolean): Storage {
  const device = backend().device;
  if (device) {
    const s = device.alloc(n, zeroed);
    deviceScratch?.push(s);
    return s;
  }
  return zeroed ? takeZeroed(n) : takeUninitialized(n);
}

/** Device storage allocated inside the innermost withDeviceScratch, or null outside one. */
let deviceScratch: Storage[] | null = null;

/**
 * The device twin of buffer_pool.ts's withScratch, for inference passes
 * whose intermediates all die with them (a decode step): run fn, then give
 * every device storage it allocated back to the device's pool, except the
 * storages `keep(result)` names (the logits), which pass to the enclosing
 * scope. Without it a graph-less pass has nobody to release its
 * activations, and each token would allocate fresh GPU buffers. On a host
 * backend it just runs fn.
 */
export function withDeviceScratch<T>(fn: () => T, keep: (result: T) => readonly Storage[]): T {
  const device = backend().device;
  if (!device) return fn();
  const outer = deviceScratch;
  const taken: Storage[] = (deviceScratch = []);
  try {
    const result = fn();
    const kept = new Set(keep(result));
    for (const s of taken) {
      if (!kept.has(s)) device.release(s);
      else outer?.push(s);
    }
    return result;
  } finally {
    deviceScratch = outer;
  }
}

/** Give storage nobody references any more back for reuse. */
export function releaseStorage(s: Storage): void {
  if (isHost(s)) giveBack(s);
  else backend().device?.release(s);
}

/**
 * Values in the current backend's storage: the same storage when it already
 * is (every host array on a host backend), an upload of host values to a
 * device backend.
 */
export function toBackend(values: Storage): Storage {
  const device = backend().device;
  return device && isHost(values) ? device.upload(values) : values;
}

export function fillStorage(s: Storage, value: number): void {
  if (isHost(s)) s.fill(value);
  else deviceOf(s).fill(s, value);
}

/**
 * toBackend for values that live for one pass (a constant, a batch of
 * inputs): on a device the upload belongs to the innermost enclosing scope —
 * withDeviceScratch (an inference pass), or withPassUploads (a training
 * micro-batch, forward and backward) — and goes back to the pool with it.
 * Not for values a module caches (a positions table): those outlive the
 * pass, and go through toBackend.
 */
export function uploadForPass(values: Float32Array): Storage {
  const s = toBackend(values);
  if (s !== values) (deviceScratch ?? passUploads)?.push(s);
  return s;
}

/** Device uploads made by uploadForPass inside the innermost withPassUploads (outside any scratch), or null. */
let passUploads: Storage[] | null = null;

/**
 * Run fn — the forward and backward of one training micro-batch — then give
 * back the uploads its pass made (uploadForPass: the batch, constants). Once
 * the backward is queued nothing reads them any more; the pool hands a
 * buffer out again only after the work queued before its release. On a host
 * backend it just runs fn.
 */
export function withPassUploads<T>(fn: () => T): T {
  const device = backend().device;
  if (!device) return fn();
  const outer = passUploads;
  const taken: Storage[] = (passUploads = []);
  try {
    return fn();
  } finally {
    passUploads = outer;
    for (const s of taken) device.release(s);
  }
}

/** dst[dstOffset …] = src[srcOffset …], n values, in either kind of storage (both the same kind). */
export function copyStorage(src: Storage, srcOffset: number, dst: Storage, dstOffset: number, n: number): void {
  if (isHost(src) && isHost(dst)) dst.set(src.subarray(srcOffset, srcOffset + n), dstOffset);
  else deviceOf(dst).copy(src, srcOffset, dst, dstOffset, n);
}

/** Values begin … begin + length, sharing memory. */
export function viewStorage(s: Storage, begin: number, length: number): Storage {
  return isHost(s) ? s.subarray(begin, begin + length) : deviceOf(s).view(s, begin, length);
}

/**
 * One storage over `parts` when they lie one after another in one device
 * allocation (a view sharing their memory), else null; always null on a host
 * backend, where nothing is gained by it (nn/joined_linear.ts).
 */
export function adjoinedStorage(parts: readonly Storage[]): Storage | null {
  const device = backend().device;
  if (!device || parts.some((s) => isHost(s) || (s as { backend: string }).backend !== backend().name)) return null;
  return device.adjoin(parts);
}

export async function readStorage(s: Storage): Promise<Float32Array> {
  return isHost(s) ? s : deviceOf(s).read(s);
}

function hostArray(s: Storage, what: string): Float32Array {
  if (isHost(s)) return s;
  throw new DeviceValuesError((s as { backend: string }).backend, what);
}

/** The device memory a handle belongs to: the current backend's (one device backend runs at a time). */
function deviceOf(s: Storage): NonNullable<ReturnType<typeof backend>['device']> {
  const be = backend();
  if (!be.device || be.name !== (s as { backend: string }).backend) {
    throw new Error(`storage of the ${(s as { backend: string }).backend} backend used while the current backend is ${be.name}`);
  }
  return be.device;
}

export function numel(shape: Shape): number {
  let n = 1;
  for (const s of shape) n *= s;
  return n;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((s, i) => s === b[i]);
}
