import { backend } from '../../backend/index.js';
import { Tensor } from '../tensor.js';

/**
 * y = x·Wᵀ + b with W fp32 in column panels (backend/panels.ts): decoding's
 * few-row products, each reading the weights once whatever the row count.
 * Inference only: it records no gradient. The backend must have linearPanels
 * (the js and native ones do).
 */
export function linearPanels(x: Tensor, panels: Float32Array, shape: readonly [number, number], bias: Tensor | null = null): Tensor {
  const [N, K] = shape;
  if (x.shape[x.rank - 1] !== K) throw new Error(`linearPanels: input [${x.shape}] does not match weight [${shape}]`);
  const b = backend();
  if (!b.linearPanels) throw new Error(`linearPanels: the ${b.name} backend has no column-panel products`);
  const rows = x.size / K;
  const out = Tensor.empty([...x.shape.slice(0, -1), N]); // every element written
  b.linearPanels(x.storage, rows, K, panels, bias?.storage ?? null, out.storage, N);
  return out;
}
