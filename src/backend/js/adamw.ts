import type { AdamWHyper } from '../backend.js';

/**
 * AdamW (Loshchilov & Hutter): Adam on the gradient, plus weight decay applied
 * directly to the weights ("decoupled") instead of being added to the gradient.
 * The order of operations follows PyTorch's implementation so results agree to
 * float precision.
 */
export function adamwStep(param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, h: AdamWHyper): void {
  const { lr, beta1, beta2, eps, weightDecay, step } = h;
  const bc1 = 1 - Math.pow(beta1, step);
  const bc2 = 1 - Math.pow(beta2, step);
  const stepSize = lr / bc1;
  const bc2Sqrt = Math.sqrt(bc2);
  const decay = 1 - lr * weightDecay;
  for (let i = 0; i < param.length; i++) {
    const g = grad[i]!;
    const mi = Math.fround(beta1 * m[i]! + (1 - beta1) * g);
    const vi = Math.fround(beta2 * v[i]! + (1 - beta2) * g * g);
    m[i] = mi;
    v[i] = vi;
    const p = Math.fround(param[i]! * decay);
    const denom = Math.fround(Math.sqrt(vi) / bc2Sqrt + eps);
    param[i] = p - stepSize * (mi / denom);
  }
}

export function sumSquares(x: Float32Array): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return s;
}

/** Backend.clipByNorm on host arrays: the rule of optim/clip.ts's clipToNorm, with the norm and factor written beside Σg². */
export function clipByNorm(grads: readonly Float32Array[], stats: Float32Array, maxNorm: number): void {
  const norm = Math.sqrt(stats[0]!);
  const factor = maxNorm > 0 && norm > maxNorm ? maxNorm / (norm + 1e-6) : 1;
  stats[1] = norm;
  stats[2] = factor;
  if (factor !== 1) for (const g of grads) scaleInPlace(g, factor);
}

export function scaleInPlace(x: Float32Array, s: number): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! * s;
}
