import { exactMatch, trainReverser } from '../../examples/encoder_decoder.js';
import type { ArticlePage } from './registry.js';
import { canvas, el, lines } from './draw.js';

/** Train both on "write it backwards" on demand (a few seconds), and draw their loss curves. */
export const encoderDecoderPage: ArticlePage = {
  id: 'encoder-decoder',
  title: 'Encoder–decoder vs "<SEP>"',
  file: 'examples/encoder_decoder.ts',
  render(root) {
    root.append(el('p', 'The same task for both: write 5 letters backwards. The Transformer reads the source with its encoder and looks at it by cross-attention; the GPT reads "abcde<SEP>edcba".'));
    const go = el('button', 'Train both (a few seconds)', 'primary');
    go.id = 'train-reversers';
    const ctx = canvas(root, 640, 240, 'loss curves');
    const note = el('p');
    go.addEventListener('click', () => {
      note.textContent = 'training…';
      setTimeout(() => {
        const runs = (['encoder-decoder', 'gpt-sep'] as const).map((k) => trainReverser(k, { steps: 150 }));
        lines(ctx, runs.map((r) => r.losses), runs.map((r) => r.kind), true);
        note.textContent = runs.map((r) => `${r.kind}: ${r.model.numParameters()} parameters, loss ${r.losses[r.losses.length - 1]!.toFixed(3)}, exact ${(100 * exactMatch(r, 100)).toFixed(0)}%`).join(' · ');
      }, 20);
    });
    root.append(go, note);
  },
};
