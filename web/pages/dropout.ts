import { applyDropout } from '../../examples/dropout.js';
import type { ArticlePage } from './registry.js';
import { bars, canvas, el } from './draw.js';

/** One vector before and after dropout, with a button for a new draw. */
export const dropoutPage: ArticlePage = {
  id: 'dropout',
  title: 'Dropout',
  file: 'examples/dropout.ts',
  render(root) {
    const x = [1, 2, 3, 4, 5, 6, 7, 8];
    const p = 0.5;
    root.append(el('p', `Training with p = ${p}: each value is zeroed with probability ${p}, the survivors multiplied by 1/(1 − p) = ${1 / (1 - p)}.`));
    bars(canvas(root, 480, 180, 'input'), x, x.map((_, i) => `x${i + 1}`), 16, '#888');
    const ctx = canvas(root, 480, 180, 'after dropout');
    let seed = 1;
    const draw = (): void => bars(ctx, applyDropout(x, p, { seed }), x.map((_, i) => `x${i + 1}`), 16);
    const again = el('button', 'Draw again');
    again.addEventListener('click', () => { seed++; draw(); });
    root.append(again);
    draw();
  },
};
