import { backend } from '../../backend/index.js';
import type { QuantizedMatrix } from '../../backend/quantized_matrix.js';
import { Tensor } from '../tensor.js';
import { type LinearEpilogue, productEpilogue } from './linear.js';

export type { QuantizedMatrix } from '../../backend/quantized_matrix.js';

/**
 * y = x·Wᵀ + b with W block-quantized (a GGUF tensor as stored: q8_0, q4_0,
 * q4_k, q6_k). Inference only: it records no gradient.
 *
 * `then`: an activation and an addend (shaped like the output), applied as
 * the output is stored (linear.ts's LinearEpilogue).
 */
export function linearQuantized(x: Tensor, w: QuantizedMatrix, bias: Tensor | null = null, then: LinearEpilogue = {}): Tensor {
  const K = w.cols;
  if (x.shape[x.rank - 1] !== K) throw new Error(`linearQuantized: input [${x.shape}] does not match weight [${w.rows}, ${w.cols}]`);
  if (bias && bias.size !== w.rows) throw new Error(`linearQuantized: bias of ${bias.size} values for ${w.rows} outputs`);
  const rows = x.size / K;
  const out = Tensor.empty([...x.shape.slice(0, -1), w.rows]); // written in full by the kernel
  backend().linearQuantized(x.storage, rows, w, bias?.storage ?? null, out.storage, productEpilogue('linearQuantized', out, then));
  return out;
}
