import { add } from '../tensor/ops/elementwise.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Dropout } from './dropout.js';
import { forwardThen } from './linear.js';
import type { LinearLayer } from './quantized_linear.js';

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

/**
 * One residual sublayer with its norm: the unit every block is built from.
 * `sublayer(h, skip)` returns skip + f(h), the addition included: a sublayer
 * that ends in a projection (attention, a feed-forward) hands skip to
 * `projectInto`, where the projection adds it as it stores its output.
 */
export function residual(x: Tensor, norm: Norm, placement: NormPlacement, sublayer: (h: Tensor, skip: Tensor) => Tensor): Tensor {
  return placement === 'pre' ? sublayer(norm.forward(x), x) : norm.forward(sublayer(x, x));
}

/**
 * A sublayer's last step, skip + dropout(layer(h)); layer(h) when skip is
 * null. With dropout off (inference, or p = 0) skip is the product's addend
 * (linear's epilogue) where the layer is a Linear: one pass over the
 * activations, not two.
 */
export function projectInto(layer: LinearLayer, h: Tensor, dropout: Dropout, skip: Tensor | null): Tensor {
  if (!skip) return dropout.forward(layer.forward(h));
  if (!dropout.active) return forwardThen(layer, h, { addend: skip });
  return add(skip, dropout.forward(layer.forward(h)));
}
