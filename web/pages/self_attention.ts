import { selfAttention } from '../../examples/self_attention.js';
import type { ArticlePage } from './registry.js';
import { canvas, el, fmt, heatmap } from './draw.js';

/** The score matrix q·k/√d and its softmax: who looks at whom. */
export const selfAttentionPage: ArticlePage = {
  id: 'self-attention',
  title: 'Self-attention',
  file: 'examples/self_attention.ts',
  render(root) {
    const t = selfAttention();
    const n = ['x1', 'x2', 'x3'];
    root.append(el('p', 'Scores q·k / √2 (row: who looks, column: at whom):'));
    heatmap(canvas(root, 360, 160, 'attention scores'), t.scores, n, n);
    root.append(el('p', 'Softmax of each row: the attention weights.'));
    heatmap(canvas(root, 360, 160, 'attention weights'), t.weights, n, n, 1);
    root.append(el('p', `u1 = ${t.weights[0]!.map((w, j) => `${w.toFixed(3)}·v${j + 1}`).join(' + ')} = ${fmt(t.u[0]!)}: u1 ≈ F(x1, x3).`));
  },
};
