import { HEADS, multiHead, TOKENS } from '../../examples/multi_head_attention.js';
import type { ArticlePage } from './registry.js';
import { canvas, el, heatmap } from './draw.js';

/** Each head's attention matrix side by side. */
export const multiHeadPage: ArticlePage = {
  id: 'multi-head',
  title: 'Multi-head attention',
  file: 'examples/multi_head_attention.ts',
  render(root) {
    const t = multiHead();
    root.append(el('p', `${HEADS} heads, each with its own query, key and value matrices over its own 4 channels; causal (no token sees later ones).`));
    t.weights.forEach((w, h) => {
      root.append(el('h3', `head ${h + 1}`));
      heatmap(canvas(root, 320, 200, `head ${h + 1} attention`), w, TOKENS, TOKENS, 1);
    });
    let diff = 0;
    t.output.forEach((r, i) => r.forEach((v, j) => (diff = Math.max(diff, Math.abs(v - t.rebuilt[i]![j]!)))));
    root.append(el('p', `Concatenating the heads and applying out_proj gives the layer's output (largest difference ${diff.toExponential(1)}).`));
  },
};
