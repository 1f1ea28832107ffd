import { logistic, SCORES, softmaxWithTemperature, twoWaySoftmax } from '../../examples/softmax.js';
import type { ArticlePage } from './registry.js';
import { bars, canvas, el, lines } from './draw.js';

/** Softmax bars that move with a temperature slider, and softmax(z, 0) against the logistic curve. */
export const softmaxPage: ArticlePage = {
  id: 'softmax',
  title: 'Softmax',
  file: 'examples/softmax.ts',
  render(root) {
    root.append(el('p', `Scores (${SCORES.join(', ')}) → softmax(scores / T). Move the temperature:`));
    const label = el('label', 'Temperature ');
    const slider = el('input');
    Object.assign(slider, { type: 'range', min: '0.1', max: '5', step: '0.1', value: '1', id: 'temperature' });
    const out = el('output', '1.0');
    label.append(slider, out);
    root.append(label);
    const ctx = canvas(root, 480, 220, 'softmax probabilities');
    const draw = (): void => {
      out.textContent = Number(slider.value).toFixed(1);
      bars(ctx, softmaxWithTemperature(SCORES, Number(slider.value)), SCORES.map((s) => `score ${s}`), 1);
    };
    slider.addEventListener('input', draw);
    draw();
    root.append(el('p', 'Two outputs, one score held at 0: softmax(z, 0) (blue) lies on the logistic function 1/(1+e^−z) (orange), z from −6 to 6.'));
    const zs = Array.from({ length: 49 }, (_, i) => -6 + i * 0.25);
    lines(canvas(root, 480, 200, 'softmax vs logistic'), [zs.map(twoWaySoftmax), zs.map(logistic)], ['softmax(z, 0)', 'logistic(z)']);
  },
};
