import { DEPTH, inputGradientNorm, layers } from '../../examples/residual.js';
import type { ArticlePage } from './registry.js';
import { canvas, el, lines, table } from './draw.js';

/** The gradient reaching the input through deeper and deeper stacks, with and without "+ x" (log scale). */
export const residualPage: ArticlePage = {
  id: 'residual',
  title: 'Residual connections',
  file: 'examples/residual.ts',
  render(root) {
    root.append(el('p', `y = x + f(x) instead of y = f(x). The size of the gradient that reaches the input through a stack of 1…${DEPTH} tanh layers (left to right; log scale):`));
    const depths = Array.from({ length: DEPTH }, (_, i) => i + 1);
    const plain = depths.map((d) => inputGradientNorm(false, layers(2, d)));
    const res = depths.map((d) => inputGradientNorm(true, layers(2, d)));
    lines(canvas(root, 640, 240, 'gradient size by depth, with and without residual'), [plain, res], ['y = f(x)', 'y = x + f(x)'], true);
    root.append(el('p', 'Without the "+ x" every layer shrinks the gradient again, and the first layers of a deep stack barely learn; with it, the direct path carries the gradient through.'));
    table(root, ['layers', 'y = f(x)', 'y = x + f(x)'], [1, 5, 10, 15, 20].map((d) => [String(d), plain[d - 1]!.toExponential(2), res[d - 1]!.toExponential(2)]));
  },
};
