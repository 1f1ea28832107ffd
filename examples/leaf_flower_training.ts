/**
 * The article, section "How are these models trained?": a loss that measures
 * how wrong the outputs are, and gradient descent that nudges every weight
 * to lower it. The gradient is found twice — by nudging each weight and
 * watching the loss ("finite differences"), and by autograd (backprop) — and
 * the two agree.
 *
 *   npm run build && node dist/examples/leaf_flower_training.js
 */
import type { Parameter } from '../src/nn/module.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { abs } from '../src/tensor/ops/abs.js';
import { sub, scale } from '../src/tensor/ops/elementwise.js';
import { sum } from '../src/tensor/ops/reduce.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { isMain } from './is_main.js';
import { LeafFlowerNet, readOutputs } from './leaf_flower_net.js';

/** The article's loss: add up how far each output is from its target. */
export function absLoss(outputs: Tensor, targets: Tensor): Tensor {
  return sum(abs(sub(outputs, targets)));
}

/** A few leaves and flowers (R, G, B, Vol); the first is the article's leaf. */
export const OBJECTS: Array<{ rgbv: number[]; kind: 'leaf' | 'flower' }> = [
  { rgbv: [32, 107, 56, 11.2], kind: 'leaf' },
  { rgbv: [45, 130, 40, 9.5], kind: 'leaf' },
  { rgbv: [70, 150, 60, 15.0], kind: 'leaf' },
  { rgbv: [20, 85, 30, 6.0], kind: 'leaf' },
  { rgbv: [255, 200, 0, 60.0], kind: 'flower' },
  { rgbv: [220, 20, 60, 30.0], kind: 'flower' },
  { rgbv: [160, 80, 200, 18.0], kind: 'flower' },
  { rgbv: [250, 240, 230, 25.0], kind: 'flower' },
];

/**
 * Inputs scaled to about 0…1 (colours by 255, volume by 100): with raw
 * values near 100 one step of gradient descent would throw the weights far.
 */
export function dataset(): { x: Tensor; targets: Tensor } {
  const x = Tensor.from(OBJECTS.flatMap((o) => [o.rgbv[0]! / 255, o.rgbv[1]! / 255, o.rgbv[2]! / 255, o.rgbv[3]! / 100]), [OBJECTS.length, 4]);
  // Target (1, 0) means "leaf", (0, 1) "flower".
  const targets = Tensor.from(OBJECTS.flatMap((o) => (o.kind === 'leaf' ? [1, 0] : [0, 1])), [OBJECTS.length, 2]);
  return { x, targets };
}

/** The loss averaged over the objects. */
export function datasetLoss(net: LeafFlowerNet, x: Tensor, targets: Tensor): Tensor {
  return scale(absLoss(net.forward(x), targets), 1 / x.shape[0]!);
}

/**
 * Gradients by nudging: raise one weight by h, lower it by h, and see how the
 * loss changes — (loss₊ − loss₋) / 2h — once per weight. Slow (two forward
 * passes per weight) but needs nothing beyond the forward pass.
 */
export function nudgeGradients(net: LeafFlowerNet, x: Tensor, targets: Tensor, h = 1e-3): Float32Array[] {
  const loss = (): number => noGrad(() => datasetLoss(net, x, targets).item());
  return net.parameters().map((p) => {
    const g = new Float32Array(p.size);
    for (let i = 0; i < p.size; i++) {
      const w = p.data[i]!;
      p.data[i] = w + h;
      const up = loss();
      p.data[i] = w - h;
      const down = loss();
      p.data[i] = w;
      g[i] = (up - down) / (2 * h);
    }
    return g;
  });
}

/** Gradients by autograd: one forward pass, one backward pass, every weight at once. */
export function autogradGradients(net: LeafFlowerNet, x: Tensor, targets: Tensor): Float32Array[] {
  net.zeroGrad();
  backward(datasetLoss(net, x, targets));
  return net.parameters().map((p) => Float32Array.from(p.grad ?? new Float32Array(p.size)));
}

export function maxDifference(a: Float32Array[], b: Float32Array[]): number {
  let max = 0;
  a.forEach((ga, k) => ga.forEach((v, i) => (max = Math.max(max, Math.abs(v - b[k]![i]!)))));
  return max;
}

export type GradientMethod = 'nudge' | 'autograd';

/** Nudging and autograd count as agreeing on a gradient entry within this. */
export const GRAD_TOLERANCE = 1e-3;

export interface TrainResult {
  net: LeafFlowerNet;
  losses: number[];
  /** Every gradient entry of every step, computed both ways on the weights being trained. */
  compared: number;
  /** How many of those agree within GRAD_TOLERANCE. */
  agreeing: number;
}

/**
 * Gradient descent: every step, move each weight a little against its
 * gradient, taken by `method`; the other method's gradient is computed too
 * and compared.
 */
export function trainLeafFlower(method: GradientMethod, { steps = 200, lr = 0.1, seed = 3 } = {}): TrainResult {
  const net = new LeafFlowerNet(new Rng(seed));
  const { x, targets } = dataset();
  const losses: number[] = [];
  let compared = 0;
  let agreeing = 0;
  for (let step = 0; step < steps; step++) {
    const auto = autogradGradients(net, x, targets);
    const nudged = nudgeGradients(net, x, targets);
    auto.forEach((g, k) => g.forEach((v, i) => {
      compared++;
      if (Math.abs(v - nudged[k]![i]!) <= GRAD_TOLERANCE) agreeing++;
    }));
    const grads = method === 'autograd' ? auto : nudged;
    net.parameters().forEach((p: Parameter, k) => p.data.forEach((w, i) => (p.data[i] = w - lr * grads[k]![i]!)));
    losses.push(noGrad(() => datasetLoss(net, x, targets).item()));
  }
  return { net, losses, compared, agreeing };
}

/** How many objects the network gets right ("the larger output wins"). */
export function accuracy(net: LeafFlowerNet): number {
  const { x } = dataset();
  const out = noGrad(() => net.forward(x));
  return OBJECTS.filter((o, i) => readOutputs(out.data.subarray(2 * i, 2 * i + 2)) === o.kind).length / OBJECTS.length;
}

function main(): void {
  const loss = absLoss(Tensor.from([0.6, 0.4]), Tensor.from([0.8, 0.2])).item();
  console.log(`outputs (0.6, 0.4), targets (0.8, 0.2): loss |0.6−0.8| + |0.4−0.2| = ${loss.toFixed(3)}`);

  const start = new LeafFlowerNet(new Rng(3));
  const { x, targets } = dataset();
  const diff0 = maxDifference(autogradGradients(start, x, targets), nudgeGradients(start, x, targets));
  console.log(`\ngradients of the untrained network, ${start.numParameters()} weights: max |nudge − autograd| = ${diff0.toExponential(2)} (tolerance ${GRAD_TOLERANCE})`);

  const byNudge = trainLeafFlower('nudge');
  const byAuto = trainLeafFlower('autograd');
  console.log('\ngradient descent, 200 steps of learning rate 0.1, one run per way of finding the gradient:');
  console.log('step   loss (nudging)   loss (autograd)');
  for (const s of [0, 9, 49, 99, 149, 199]) {
    console.log(`${String(s + 1).padStart(4)}   ${byNudge.losses[s]!.toFixed(4).padStart(14)}   ${byAuto.losses[s]!.toFixed(4).padStart(15)}`);
  }
  console.log(`accuracy: ${accuracy(byNudge.net) * 100}% (nudging), ${accuracy(byAuto.net) * 100}% (autograd)`);
  const compared = byNudge.compared + byAuto.compared;
  const agreeing = byNudge.agreeing + byAuto.agreeing;
  console.log(
    `\nduring training, ${agreeing} of ${compared} gradient entries (${((100 * agreeing) / compared).toFixed(1)}%) agree within ${GRAD_TOLERANCE}. ` +
      'The rest belong to weights sitting within one nudge of a corner — an output at its target (|·|) or a middle neuron at 0 (ReLU) — ' +
      'where the slope jumps and nudging measures the average of the two sides. So the runs part ways a little, and both still learn.',
  );
}

if (isMain(import.meta.url)) main();
