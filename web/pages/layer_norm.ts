import { EXAMPLE, histogram, meanAndSpread, normalize, wideVector } from '../../examples/layer_norm.js';
import type { ArticlePage } from './registry.js';
import { bars, canvas, el, fmt } from './draw.js';

/** (x − M) / S, and a histogram before and after. */
export const layerNormPage: ArticlePage = {
  id: 'layer-norm',
  title: 'Layer normalization',
  file: 'examples/layer_norm.ts',
  render(root) {
    const { M, S } = meanAndSpread(EXAMPLE);
    root.append(el('p', `x = ${fmt(EXAMPLE, 0)}: M = ${M}, S = ${S.toFixed(3)}, (x − M) / S = ${fmt(normalize(EXAMPLE))}`));
    const before = wideVector();
    const after = normalize(before);
    const b = meanAndSpread(before);
    const a = meanAndSpread(after);
    root.append(el('p', `64 values before: mean ${b.M.toFixed(2)}, spread ${b.S.toFixed(2)} (bins of 2 from −12 to 18)`));
    const edges = (lo: number, w: number): string[] => Array.from({ length: 15 }, (_, i) => (lo + i * w).toFixed(1));
    bars(canvas(root, 640, 180, 'histogram before'), histogram(before, -12, 18, 15), edges(-12, 2), 16, '#dc6e14');
    root.append(el('p', `after: mean ${a.M.toFixed(2)}, spread ${a.S.toFixed(2)} (bins of 0.4 from −3 to 3)`));
    bars(canvas(root, 640, 180, 'histogram after'), histogram(after, -3, 3, 15), edges(-3, 0.4), 16);
  },
};
