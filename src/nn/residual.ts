import { add } from '../tensor/ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';

/**
 * Where the norm sits around a residual sublayer. "post" is the paper's Add &
 * Norm, norm(x + sublayer(x)); "pre" (GPT-2, ViT, Llama) is
 * x + sublayer(norm(x)), which leaves the residual path untouched and trains
 * deep stacks without warm-up tricks.
 */
export type NormPlacement = 'pre' | 'post';

/** Any normalisation layer: LayerNorm, RMSNorm. */
export interface Norm {
  forward(x: Tensor): Tensor;
}

/** One residual sublayer with its norm: the unit every block is built from. */
export function residual(x: Tensor, norm: Norm, placement: NormPlacement, sublayer: (h: Tensor) => Tensor): Tensor {
  return placement === 'pre' ? add(x, sublayer(norm.forward(x))) : norm.forward(add(x, sublayer(x)));
}
