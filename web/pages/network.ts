import { forwardTrace } from '../../examples/leaf_flower_forward.js';
import { ARTICLE_WEIGHTS, LEAF } from '../../examples/leaf_flower_net.js';
import type { ArticlePage } from './registry.js';
import { canvas, el, fmt } from './draw.js';

/** The 4-3-2 network drawn as circles and weighted lines, with the leaf's numbers in every neuron. */
export const networkPage: ArticlePage = {
  id: 'network',
  title: 'A simple neural network',
  file: 'examples/leaf_flower_forward.ts',
  render(root) {
    const t = forwardTrace(LEAF);
    root.append(el('p', `The leaf (R, G, B, Volume) = (${LEAF.join(', ')}) flows through three middle neurons with ReLU to two outputs. Line thickness = |weight|, blue positive, orange negative.`));
    const ctx = canvas(root, 640, 320, 'the 4-3-2 network with its weights');
    const layers = [LEAF, t.middle, t.outputs];
    const labels = [['R', 'G', 'B', 'Vol'], ['m1', 'm2', 'm3'], ['leaf', 'flower']];
    const pos = layers.map((l, i) => l.map((_, j) => [80 + i * 240, 40 + (j + 0.5) * (240 / l.length) + 20] as const));
    const weights = [ARTICLE_WEIGHTS.middle, ARTICLE_WEIGHTS.out];
    weights.forEach((w, i) => w.forEach((row, to) => row.forEach((v, from) => {
      ctx.strokeStyle = v >= 0 ? '#1f4fb4' : '#dc6e14';
      ctx.lineWidth = 0.5 + 4 * Math.min(1, Math.abs(v));
      ctx.beginPath();
      ctx.moveTo(...pos[i]![from]!);
      ctx.lineTo(...pos[i + 1]![to]!);
      ctx.stroke();
    })));
    ctx.font = '12px system-ui, sans-serif';
    ctx.textAlign = 'center';
    pos.forEach((l, i) => l.forEach(([x, y], j) => {
      ctx.fillStyle = '#fff';
      ctx.strokeStyle = '#333';
      ctx.lineWidth = 1;
      ctx.beginPath();
      ctx.arc(x, y, 24, 0, 2 * Math.PI);
      ctx.fill();
      ctx.stroke();
      ctx.fillStyle = '#222';
      ctx.fillText(labels[i]![j]!, x, y - 4);
      ctx.fillText(layers[i]![j]!.toFixed(2), x, y + 10);
    }));
    root.append(el('p', `Middle sums ${fmt(t.middleSums)} → ReLU ${fmt(t.middle)} → outputs ${fmt(t.outputs)}: the larger one wins, "${t.verdict}".`));
  },
};
