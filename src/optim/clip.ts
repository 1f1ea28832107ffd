import { backend } from '../backend/index.js';
import { DeviceValuesError, isHost, type Storage } from '../backend/storage.js';
import type { Parameter } from '../nn/module.js';
import { allocStorage } from '../tensor/tensor.js';

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
 * that reads nothing back): `stats` holds Σg² and two more slots, where
 * backend.clipByNorm writes the norm and the factor (clipToNorm's rule: on
 * webgpu one invocation computes them, and one kernel per gradient array
 * multiplies by the factor read on the device).
 */
export function clipToNormQueued(grads: readonly Storage[], stats: Storage, maxNorm: number): void {
  if (!(maxNorm > 0)) return;
  backend().clipByNorm(grads, stats, maxNorm);
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
