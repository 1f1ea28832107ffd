import { backend } from '../backend/index.js';
import type { Parameter } from '../nn/module.js';

/**
 * Rescale all gradients together so their global L2 norm is at most maxNorm:
 * one bad batch cannot throw the weights far. Returns the norm before clipping.
 */
export function clipGradNorm(params: Parameter[], maxNorm: number): number {
  const be = backend();
  const grads = joinNeighbours(params.flatMap((p) => (p.grad ? [p.grad] : [])));
  let sq = 0;
  for (const g of grads) sq += be.sumSquares(g);
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && norm > maxNorm) {
    const s = maxNorm / (norm + 1e-6);
    for (const g of grads) be.scaleInPlace(g, s);
  }
  return norm;
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
