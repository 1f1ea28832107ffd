import { trainLeafFlower } from '../../examples/leaf_flower_training.js';
import type { ArticlePage } from './registry.js';
import { canvas, el, lines } from './draw.js';

/** The loss curve of gradient descent, the gradient found by nudging and by autograd. */
export const trainingPage: ArticlePage = {
  id: 'training',
  title: 'How are these models trained?',
  file: 'examples/leaf_flower_training.ts',
  render(root) {
    root.append(el('p', 'Loss = |output − target| added up. 200 steps of gradient descent from random weights, the gradient found two ways.'));
    const nudge = trainLeafFlower('nudge');
    const auto = trainLeafFlower('autograd');
    lines(canvas(root, 640, 260, 'loss curve'), [nudge.losses, auto.losses], ['nudging each weight', 'autograd']);
    root.append(el('p', `Loss ${auto.losses[0]!.toFixed(3)} → ${auto.losses[auto.losses.length - 1]!.toFixed(3)} (autograd); ${(100 * (nudge.agreeing + auto.agreeing) / (nudge.compared + auto.compared)).toFixed(1)}% of gradient entries agree within 10⁻³.`));
  },
};
