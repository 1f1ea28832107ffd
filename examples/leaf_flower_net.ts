import { Linear } from '../src/nn/linear.js';
import { Module } from '../src/nn/module.js';
import { relu } from '../src/tensor/ops/elementwise.js';
import type { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';

/**
 * The article's first network: 4 inputs (R, G, B, Volume) → 3 middle neurons
 * with ReLU → 2 outputs (leaf, flower). Built from the library's own Linear
 * layers, so every number below comes from the ops a GPT uses.
 */
export class LeafFlowerNet extends Module {
  middle: Linear;
  out: Linear;

  constructor(rng: Rng = new Rng(0)) {
    super();
    this.middle = new Linear(4, 3, { bias: true, std: 0.5, rng });
    this.out = new Linear(3, 2, { bias: true, std: 0.5, rng });
  }

  /** x: [N, 4] objects → [N, 2] scores (leaf, flower). */
  forward(x: Tensor): Tensor {
    return this.out.forward(relu(this.middle.forward(x)));
  }
}

/** The article's leaf: dominant colour (R, G, B) = (32, 107, 56), volume 11.2 ml. */
export const LEAF = [32, 107, 56, 11.2];

/**
 * The weights of the article's worked example. Only the first middle neuron's
 * weights (0.10, −0.29, −0.07, 0.46) and its bias 0.25 are the article's; the
 * rest are chosen here so that the network reads the leaf as a leaf.
 */
export const ARTICLE_WEIGHTS = {
  middle: [
    [0.10, -0.29, -0.07, 0.46],
    [-0.05, 0.12, -0.02, 0.03],
    [0.08, -0.06, 0.01, 0.15],
  ],
  middleBias: [0.25, 0.1, -0.2],
  out: [
    [0.4, 0.9, -0.6],
    [0.3, -0.5, 0.8],
  ],
  outBias: [0.05, -0.05],
};

/** A LeafFlowerNet holding ARTICLE_WEIGHTS. */
export function articleNet(): LeafFlowerNet {
  const net = new LeafFlowerNet();
  net.middle.weight.data.set(ARTICLE_WEIGHTS.middle.flat());
  net.middle.bias!.data.set(ARTICLE_WEIGHTS.middleBias);
  net.out.weight.data.set(ARTICLE_WEIGHTS.out.flat());
  net.out.bias!.data.set(ARTICLE_WEIGHTS.outBias);
  return net;
}

/** "The larger output wins": index 0 means leaf, 1 means flower. */
export function readOutputs(scores: ArrayLike<number>): 'leaf' | 'flower' {
  return scores[0]! >= scores[1]! ? 'leaf' : 'flower';
}
