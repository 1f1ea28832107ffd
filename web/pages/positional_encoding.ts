import { orderEffect, sinusoids, WORDS } from '../../examples/positional_encoding.js';
import type { ArticlePage } from './registry.js';
import { canvas, el, heatmap, lines } from './draw.js';

/** The sinusoids by position, and the order test. */
export const positionsPage: ArticlePage = {
  id: 'positions',
  title: 'Positional encoding',
  file: 'examples/positional_encoding.ts',
  render(root) {
    const table = sinusoids(32, 8);
    root.append(el('p', 'sin(pos / 10000^(2i/d)) and cos(…) for d = 8, positions 0…31: clocks of ever slower speed.'));
    lines(canvas(root, 640, 220, 'sinusoids by position'), [0, 1, 2, 3].map((c) => table.map((r) => r[c]!)), ['sin i=0', 'cos i=0', 'sin i=1', 'cos i=1']);
    heatmap(canvas(root, 640, 200, 'sinusoidal table'), table.slice(0, 8), Array.from({ length: 8 }, (_, i) => `pos ${i}`), ['s0', 'c0', 's1', 'c1', 's2', 'c2', 's3', 'c3'], 1);
    const b = [...WORDS].reverse();
    root.append(el('p', `"${WORDS.join(' ')}" vs "${b.join(' ')}", the largest difference of a word's attention output: without positions ${orderEffect(WORDS, b, 'none').toExponential(1)}, sinusoidal ${orderEffect(WORDS, b, 'sinusoidal').toFixed(3)}, learned ${orderEffect(WORDS, b, 'learned').toFixed(3)}.`));
  },
};
