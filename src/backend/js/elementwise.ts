import type { BinaryOp, UnaryOp } from '../backend.js';

const GELU_C = Math.sqrt(2 / Math.PI);

/** Row-major strides with 0 where a dimension of size 1 is broadcast. */
export function broadcastStrides(shape: number[], outShape: number[]): number[] {
  const strides = new Array<number>(outShape.length).fill(0);
  let s = 1;
  for (let d = outShape.length - 1; d >= 0; d--) {
    const size = shape[d]!;
    strides[d] = size === 1 && outShape[d] !== 1 ? 0 : s;
    s *= size;
  }
  return strides;
}

function apply(op: BinaryOp, x: number, y: number): number {
  switch (op) {
    case 'add': return x + y;
    case 'sub': return x - y;
    case 'mul': return x * y;
    case 'div': return x / y;
  }
}

export function binary(op: BinaryOp, a: Float32Array, aShape: number[], b: Float32Array, bShape: number[], out: Float32Array, outShape: number[]): void {
  const n = out.length;
  if (a.length === n && b.length === n) {
    // Same shape: the common case, one flat loop per op so V8 keeps it tight.
    if (op === 'add') for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
    else if (op === 'mul') for (let i = 0; i < n; i++) out[i] = a[i]! * b[i]!;
    else for (let i = 0; i < n; i++) out[i] = apply(op, a[i]!, b[i]!);
    return;
  }
  if (a.length === n && n % b.length === 0 && isSuffix(bShape, outShape)) {
    // b repeats along the leading axes (a bias added to every row).
    const m = b.length;
    for (let i = 0; i < n; i += m) for (let j = 0; j < m; j++) out[i + j] = apply(op, a[i + j]!, b[j]!);
    return;
  }
  const sa = broadcastStrides(aShape, outShape);
  const sb = broadcastStrides(bShape, outShape);
  forEachIndex(outShape, sa, sb, (o, ia, ib) => { out[o] = apply(op, a[ia]!, b[ib]!); });
}

/** True when `shape` (after dropping leading 1s) equals the trailing dims of `outShape`. */
export function isSuffix(shape: number[], outShape: number[]): boolean {
  let d = 0;
  while (d < shape.length && shape[d] === 1) d++;
  const tail = shape.slice(d);
  const offset = outShape.length - tail.length;
  return tail.every((s, i) => s === outShape[offset + i]);
}

/** Walk every index of `shape` in row-major order, tracking two strided offsets. */
export function forEachIndex(shape: number[], s1: number[], s2: number[], f: (flat: number, o1: number, o2: number) => void): void {
  const rank = shape.length;
  const idx = new Array<number>(rank).fill(0);
  const total = shape.reduce((p, q) => p * q, 1);
  let o1 = 0, o2 = 0;
  for (let flat = 0; flat < total; flat++) {
    f(flat, o1, o2);
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      o1 += s1[d]!;
      o2 += s2[d]!;
      if (idx[d]! < shape[d]!) break;
      o1 -= s1[d]! * shape[d]!;
      o2 -= s2[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

export function reduceSumTo(src: Float32Array, srcShape: number[], dst: Float32Array, dstShape: number[]): void {
  if (dst.length === 1) {
    let s = 0;
    for (let i = 0; i < src.length; i++) s += src[i]!;
    dst[0] = dst[0]! + s;
    return;
  }
  const n = src.length;
  const m = dst.length;
  if (isSuffix(dstShape, srcShape)) {
    // Summing over leading axes (bias gradients): accumulate rows.
    for (let i = 0; i < n; i += m) for (let j = 0; j < m; j++) dst[j] = dst[j]! + src[i + j]!;
    return;
  }
  const srcStrides = broadcastStrides(srcShape, srcShape);
  const dstStrides = broadcastStrides(dstShape, srcShape);
  forEachIndex(srcShape, srcStrides, dstStrides, (_f, is, id) => { dst[id] = dst[id]! + src[is]!; });
}

export function unary(op: UnaryOp, x: Float32Array, out: Float32Array): void {
  const n = x.length;
  switch (op) {
    case 'exp': for (let i = 0; i < n; i++) out[i] = Math.exp(x[i]!); break;
    case 'log': for (let i = 0; i < n; i++) out[i] = Math.log(x[i]!); break;
    case 'relu': for (let i = 0; i < n; i++) out[i] = x[i]! > 0 ? x[i]! : 0; break;
    case 'tanh': for (let i = 0; i < n; i++) out[i] = Math.tanh(x[i]!); break;
    case 'neg': for (let i = 0; i < n; i++) out[i] = -x[i]!; break;
    case 'sqrt': for (let i = 0; i < n; i++) out[i] = Math.sqrt(x[i]!); break;
    case 'silu': for (let i = 0; i < n; i++) out[i] = x[i]! / (1 + Math.exp(-x[i]!)); break;
    case 'gelu':
      // GPT-2's tanh approximation of x·Φ(x).
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        out[i] = 0.5 * v * (1 + Math.tanh(GELU_C * (v + 0.044715 * v * v * v)));
      }
      break;
  }
}

export function unaryBackward(op: UnaryOp, x: Float32Array, y: Float32Array, dy: Float32Array, dx: Float32Array, accumulate: boolean): void {
  const n = x.length;
  if (!accumulate) dx.fill(0);
  switch (op) {
    case 'exp': for (let i = 0; i < n; i++) dx[i] = dx[i]! + dy[i]! * y[i]!; break;
    case 'log': for (let i = 0; i < n; i++) dx[i] = dx[i]! + dy[i]! / x[i]!; break;
    case 'relu': for (let i = 0; i < n; i++) dx[i] = dx[i]! + (x[i]! > 0 ? dy[i]! : 0); break;
    case 'tanh': for (let i = 0; i < n; i++) dx[i] = dx[i]! + dy[i]! * (1 - y[i]! * y[i]!); break;
    case 'neg': for (let i = 0; i < n; i++) dx[i] = dx[i]! - dy[i]!; break;
    case 'sqrt': for (let i = 0; i < n; i++) dx[i] = dx[i]! + dy[i]! * 0.5 / y[i]!; break;
    case 'silu':
      // d/dx x·σ(x) = σ(x)·(1 + x·(1 − σ(x))).
      for (let i = 0; i < n; i++) {
        const sg = 1 / (1 + Math.exp(-x[i]!));
        dx[i] = dx[i]! + dy[i]! * sg * (1 + x[i]! * (1 - sg));
      }
      break;
    case 'gelu':
      for (let i = 0; i < n; i++) {
        const v = x[i]!;
        const u = GELU_C * (v + 0.044715 * v * v * v);
        const t = Math.tanh(u);
        const du = GELU_C * (1 + 3 * 0.044715 * v * v);
        dx[i] = dx[i]! + dy[i]! * (0.5 * (1 + t) + 0.5 * v * (1 - t * t) * du);
      }
      break;
  }
}
