import { DEPTH, inputGradientNorm, layers } from '../../examples/residual.js';
import type { ArticlePage } from './registry.js';
import { bars, canvas, el } from './draw.js';

/** The gradient reaching the input through deeper and deeper stacks, with and without "+ x" (log scale). */
export const residualPage: ArticlePage = {
  id: 'residual',
  title: 'Residual connections',
  file: 'examples/residual.ts',
  render(root) {
    root.append(el('p', `y = x + f(x) instead of y = f(x). log₁₀ of the gradient that reaches the input through 1…${DEPTH} tanh layers:`));
    const depths = [1, 5, 10, 15, 20];
    const plain = depths.map((d) => Math.log10(inputGradientNorm(false, layers(2, d))));
    const res = depths.map((d) => Math.log10(inputGradientNorm(true, layers(2, d))));
    const max = Math.max(...plain.map(Math.abs), ...res.map(Math.abs));
    root.append(el('p', 'y = f(x):'));
    bars(canvas(root, 480, 200, 'gradient without residual'), plain, depths.map((d) => `${d} layers`), max, '#dc6e14');
    root.append(el('p', 'y = x + f(x):'));
    bars(canvas(root, 480, 200, 'gradient with residual'), res, depths.map((d) => `${d} layers`), max);
  },
};
