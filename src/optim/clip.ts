import { backend } from '../backend/index.js';
import { DeviceValuesError, isHost, type Storage } from '../backend/storage.js';
import type { Parameter } from '../nn/module.js';
import { allocStorage, releaseStorage, toBackend, viewStorage } from '../tensor/tensor.js';

/**
 * Rescale all gradients together so their global L2 norm is at most maxNorm:
 * one bad batch cannot throw the weights far. Returns the norm before clipping.
 * Host backends only (it returns the norm at once); a training step on any
 * backend queues the norm with squaredNorm and clips with clipToNorm.
 */
export function clipGradNorm(params: Parameter[], maxNorm: number): number {
  const grads = joinNeighbours(params.flatMap((p) => (p.grad ? [p.grad] : [])));
  const sq = squaredNorm(grads);
  if (!isHost(sq)) throw new DeviceValuesError(backend().name, 'clipGradNorm');
  const norm = Math.sqrt(sq[0]!);
  clipToNorm(grads, norm, maxNorm);
  return norm;
}

/** Σ g² over every array, as a one-element storage of the current backend (queued, not read). */
export function squaredNorm(grads: readonly Storage[], out: Storage = allocStorage(1, false)): Storage {
  backend().sumSquares(grads, out);
  return out;
}

/** Scale the gradients by maxNorm/norm when their norm is over maxNorm (0 disables). */
export function clipToNorm(grads: readonly Storage[], norm: number, maxNorm: number): void {
  if (!(maxNorm > 0 && norm > maxNorm)) return;
  const s = maxNorm / (norm + 1e-6);
  for (const g of grads) backend().scaleInPlace(g, s);
}

/**
 * clipToNorm with the norm left where the backend keeps it (a device step
 * that reads nothing back): from Σg² in `sumSquares`, the factor
 * min(1, maxNorm/(√Σg² + 1e-6)) is computed by elementwise entry points into
 * a one-element storage, and every gradient is multiplied by it. The same
 * rule as clipToNorm's, except for norms within 1e-6 below maxNorm (scaled by
 * a factor within 1e-6 of 1 instead of left alone).
 */
export function clipToNormQueued(grads: readonly Storage[], sumSquares: Storage, maxNorm: number): void {
  if (!(maxNorm > 0)) return;
  const be = backend();
  const constants = toBackend(Float32Array.of(1e-6, maxNorm, 1));
  const [eps, max, one] = [0, 1, 2].map((i) => viewStorage(constants, i, 1)) as [Storage, Storage, Storage];
  const f = allocStorage(1, false);
  const s = [1];
  be.unary('sqrt', sumSquares, f); // the norm
  be.binary('add', f, s, eps, s, f, s);
  be.binary('div', max, s, f, s, f, s); // r = maxNorm/(norm + 1e-6)
  be.binary('sub', one, s, f, s, f, s);
  be.unary('relu', f, f);
  be.binary('sub', one, s, f, s, f, s); // 1 − max(0, 1 − r) = min(1, r)
  for (const g of grads) be.binary('mul', g, [g.length], f, s, g, [g.length]);
  releaseStorage(f);
  releaseStorage(constants);
}

/**
 * The same elements in as few arrays as possible: views that sit end to end in
 * one buffer (gradients in a ParameterArena) become one view, so a model's
 * gradients are one kernel call instead of one per tensor.
 */
function joinNeighbours(views: Float32Array[]): Float32Array[] {
  const byBuffer = new Map<ArrayBufferLike, Float32Array[]>();
  for (const v of views) {
    const group = byBuffer.get(v.buffer);
    if (group) group.push(v);
    else byBuffer.set(v.buffer, [v]);
  }
  const out: Float32Array[] = [];
  for (const group of byBuffer.values()) {
    group.sort((a, b) => a.byteOffset - b.byteOffset);
    let run = group[0]!;
    for (const v of group.slice(1)) {
      if (run.byteOffset + run.byteLength === v.byteOffset) run = new Float32Array(run.buffer, run.byteOffset, run.length + v.length);
      else {
        out.push(run);
        run = v;
      }
    }
    out.push(run);
  }
  return out;
}
