/**
 * The article, section "A simple neural network": one forward pass of the
 * 4-3-2 leaf/flower network, step by step, with the library's ops.
 *
 *   npm run build && node dist/examples/leaf_flower_forward.js
 */
import { noGrad } from '../src/tensor/autograd.js';
import { relu } from '../src/tensor/ops/elementwise.js';
import { linear } from '../src/tensor/ops/linear.js';
import { Tensor } from '../src/tensor/tensor.js';
import { isMain } from './is_main.js';
import { articleNet, ARTICLE_WEIGHTS, LEAF, readOutputs } from './leaf_flower_net.js';

/** One neuron: multiply each input by its weight and add them up (plus a bias, when given). */
export function neuron(inputs: number[], weights: number[], bias?: number): number {
  const x = Tensor.from(inputs, [1, inputs.length]);
  const w = Tensor.from(weights, [1, weights.length]);
  const b = bias === undefined ? null : Tensor.from([bias]);
  return linear(x, w, b).item();
}

export interface ForwardTrace {
  /** The middle neurons before ReLU: weighted sums plus biases. */
  middleSums: number[];
  /** After ReLU: negatives become 0. */
  middle: number[];
  /** The two output neurons: (leaf, flower). */
  outputs: number[];
  verdict: 'leaf' | 'flower';
}

/** The whole network on one object, keeping every intermediate number. */
export function forwardTrace(object: number[]): ForwardTrace {
  const net = articleNet();
  return noGrad(() => {
    const x = Tensor.from(object, [1, 4]);
    const sums = net.middle.forward(x);
    const middle = relu(sums);
    const outputs = net.out.forward(middle);
    return { middleSums: [...sums.data], middle: [...middle.data], outputs: [...outputs.data], verdict: readOutputs(outputs.data) };
  });
}

const fmt = (xs: number[]): string => `(${xs.map((v) => v.toFixed(3)).join(', ')})`;

function main(): void {
  const w = ARTICLE_WEIGHTS.middle[0]!;
  console.log(`input (R, G, B, Vol) = (${LEAF.join(', ')})`);
  console.log(`first middle neuron, weights ${fmt(w)}:`);
  const terms = LEAF.map((v, i) => `${v}·${w[i]! < 0 ? `(${w[i]})` : w[i]}`).join(' + ');
  console.log(`  ${terms} = ${neuron(LEAF, w).toFixed(3)}`);
  console.log(`  with a bias of 0.25: ${neuron(LEAF, w, 0.25).toFixed(3)}`);
  const t = forwardTrace(LEAF);
  console.log(`all three middle neurons (with biases): ${fmt(t.middleSums)}`);
  console.log(`after ReLU (negatives become 0):          ${fmt(t.middle)}`);
  console.log(`outputs (leaf, flower):                   ${fmt(t.outputs)}`);
  console.log(`the larger one wins → ${t.verdict}`);
  const sunflower = [255, 200, 0, 60];
  const s = forwardTrace(sunflower);
  console.log(`\na sunflower (${sunflower.join(', ')}): outputs ${fmt(s.outputs)} → ${s.verdict}`);
}

if (isMain(import.meta.url)) main();
