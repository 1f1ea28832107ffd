import { backend } from '../backend/index.js';
import type { Parameter } from '../nn/module.js';

/**
 * Rescale all gradients together so their global L2 norm is at most maxNorm:
 * one bad batch cannot throw the weights far. Returns the norm before clipping.
 */
export function clipGradNorm(params: Parameter[], maxNorm: number): number {
  const be = backend();
  let sq = 0;
  for (const p of params) if (p.grad) sq += be.sumSquares(p.grad);
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && norm > maxNorm) {
    const s = maxNorm / (norm + 1e-6);
    for (const p of params) if (p.grad) be.scaleInPlace(p.grad, s);
  }
  return norm;
}
