import { backend } from '../../backend/index.js';
import { Tensor } from '../tensor.js';
import { type LinearEpilogue, productEpilogue } from './linear.js';

/**
 * A weight matrix [N, K] quantized per output channel: row n is stored as
 * int8 values q with w ≈ q·scale[n], scale[n] = max|w[n, :]| / 127.
 */
export interface Int8Weight {
  shape: [number, number];
  data: Int8Array;
  scale: Float32Array;
}

/**
 * y = x·Wᵀ + b with W int8 (weight-only quantization: activations stay fp32,
 * weights are widened on the fly). Inference only: it records no gradient.
 *
 * `then`: an activation and an addend (shaped like the output), applied as
 * the output is stored (linear.ts's LinearEpilogue).
 */
export function linearInt8(x: Tensor, w: Int8Weight, bias: Tensor | null = null, then: LinearEpilogue = {}): Tensor {
  const [N, K] = w.shape;
  if (x.shape[x.rank - 1] !== K) throw new Error(`linearInt8: input [${x.shape}] does not match weight [${w.shape}]`);
  const rows = x.size / K;
  const out = Tensor.empty([...x.shape.slice(0, -1), N]); // every element written
  backend().linearInt8(x.storage, rows, K, w.data, w.scale, bias?.storage ?? null, out.storage, N, productEpilogue('linearInt8', out, then));
  return out;
}
