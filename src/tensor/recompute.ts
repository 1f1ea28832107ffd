import type { Rng } from '../util/rng.js';
import { backward, isGradEnabled, record, topologicalOrder } from './autograd.js';
import { giveBack } from './buffer_pool.js';
import { matmulPrecision, withPrecision } from './precision.js';
import { Tensor } from './tensor.js';

/**
 * Activation recomputation ("gradient checkpointing", Chen et al. 2016):
 * y = f(x) keeping only x. A stored forward pass keeps every intermediate
 * value of f (a transformer block's norms, projections, attention output,
 * MLP hidden layer: about 20 activations of the block's width) until the
 * backward pass reads them; here they are released as soon as y is computed,
 * and the backward pass runs f again from x to get them back, one block at a
 * time. Memory for activations drops from one set per block to one set in
 * all, for about one extra forward pass of compute.
 *
 * The gradients are bit-identical to the stored run's: the recomputation
 * does the same arithmetic in the same order, in the same precision, and
 * with the same random draws — every generator in `rngs` (dropout's) is put
 * back to where it stood before the first pass, and then forward again.
 */
export function recomputed(f: (x: Tensor) => Tensor, x: Tensor, rngs: readonly Rng[]): Tensor {
  if (!isGradEnabled() || !x.requiresGrad) return f(x);
  const drawsFrom = rngs.map((r) => r.getState());
  const precision = matmulPrecision();
  const y = releaseGraph(f(leafLike(x)));
  return record(y, [x], 'recomputed', () => {
    const drawsNow = rngs.map((r) => r.getState());
    rngs.forEach((r, i) => r.setState(drawsFrom[i]!));
    const input = leafLike(x);
    const again = withPrecision(precision, () => f(input));
    rngs.forEach((r, i) => r.setState(drawsNow[i]!));
    // Backpropagate through the recomputed graph: parameters' gradients accumulate
    // where they live, the input's lands on `input`, and the graph is freed.
    backward(again, y.grad!, { freeActivations: true });
    const dx = input.grad!;
    if (!x.grad) x.grad = dx; // x's only contribution so far: hand the buffer over
    else {
      for (let i = 0; i < dx.length; i++) x.grad[i] += dx[i]!;
      giveBack(dx);
    }
  });
}

/** A new leaf over x's values (shared, not copied) whose gradient is collected separately. */
function leafLike(x: Tensor): Tensor {
  return new Tensor(x.data, x.shape, true);
}

/**
 * Cut y from the graph that computed it and give the intermediate values back
 * to the buffer pool; y's own values and the leaves' (parameters, the input)
 * stay. Returns y as a plain tensor.
 */
function releaseGraph(y: Tensor): Tensor {
  const order = topologicalOrder(y);
  const kept = new Set<Float32Array>([y.data, ...order.filter((t) => !t.gradFn).map((t) => t.data)]);
  const freed = new Set<Float32Array>();
  for (const t of order) {
    if (!t.gradFn) continue;
    t.gradFn = null;
    if (!kept.has(t.data)) freed.add(t.data);
  }
  for (const buf of freed) giveBack(buf);
  return new Tensor(y.data, y.shape);
}
