/**
 * The article, section "Residual connections": instead of a layer replacing
 * its input, y = f(x), it adds to it, y = x + f(x). Each layer only has to
 * learn a correction, and — the reason deep stacks train at all — the
 * gradient has a straight path back through every "+ x". Here a stack of 20
 * small tanh layers, with and without the "+ x", and the gradient that
 * reaches the input through each (autograd).
 *
 *   npm run build && node dist/examples/residual.js
 */
import { Linear } from '../src/nn/linear.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { add, tanh } from '../src/tensor/ops/elementwise.js';
import { sum } from '../src/tensor/ops/reduce.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { vec } from './format.js';
import { isMain } from './is_main.js';

export const WIDTH = 8;
export const DEPTH = 20;

/** DEPTH layers f(x) = tanh(W·x + b), small random weights (as at the start of training). */
export function layers(seed = 2, depth = DEPTH): Linear[] {
  const rng = new Rng(seed);
  return Array.from({ length: depth }, () => new Linear(WIDTH, WIDTH, { bias: true, std: 0.2, rng }));
}

const f = (layer: Linear, x: Tensor): Tensor => tanh(layer.forward(x));

/** One layer on x: f(x) and x + f(x). */
export function oneLayer(x: number[], layer = layers()[0]!): { fx: number[]; y: number[] } {
  return noGrad(() => {
    const xt = Tensor.from(x, [1, WIDTH]);
    const fx = f(layer, xt);
    return { fx: [...fx.data], y: [...add(xt, fx).data] };
  });
}

/** The size (L2 norm) of d(sum of outputs)/d(input) through the stack, with or without residual connections. */
export function inputGradientNorm(withResidual: boolean, stack = layers()): number {
  const x = Tensor.from(Array.from({ length: WIDTH }, (_, i) => (i % 3) - 1), [1, WIDTH], true);
  let h = x;
  for (const layer of stack) h = withResidual ? add(h, f(layer, h)) : f(layer, h);
  backward(sum(h));
  return Math.hypot(...x.grad!);
}

function main(): void {
  const x = [1, 0, -1, 0.5, 2, 0, 1, -0.5];
  const { fx, y } = oneLayer(x);
  console.log(`x        = ${vec(x, 2)}`);
  console.log(`f(x)     = ${vec(fx)}`);
  console.log(`x + f(x) = ${vec(y)}  (the layer adds a correction; x passes through)`);
  const plain = inputGradientNorm(false);
  const res = inputGradientNorm(true);
  console.log(`\nthe gradient that reaches the input through ${DEPTH} layers:`);
  console.log(`  y = f(x):     |grad| = ${plain.toExponential(2)}`);
  console.log(`  y = x + f(x): |grad| = ${res.toExponential(2)}  (${(res / plain).toExponential(1)} times larger)`);
}

if (isMain(import.meta.url)) main();
