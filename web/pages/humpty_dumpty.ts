import { continueText, nextCharProbabilities, RHYME, trainCharModel, WINDOW } from '../../examples/humpty_dumpty.js';
import type { ArticlePage } from './registry.js';
import { bars, canvas, el, lines, table } from './draw.js';

const PROMPT = 'humpty dumpt';

/**
 * Train the toy GPT on the rhyme on demand, then: its loss curve, the next
 * character's probabilities after "humpty dumpt", and the 12-character
 * window sliding along the model's own output.
 */
export const humptyPage: ArticlePage = {
  id: 'generating',
  title: 'How does all this generate language?',
  file: 'examples/humpty_dumpty.ts',
  render(root) {
    root.append(el('p', `The model reads the last ${WINDOW} characters and scores every character as the next one; the likeliest is written, the window slides by one, and again. It learns from this rhyme:`));
    root.append(el('pre', RHYME, 'mono'));
    const go = el('button', 'Train the GPT on the rhyme (a few seconds)', 'primary');
    go.id = 'train-humpty';
    const out = el('div');
    go.addEventListener('click', () => {
      go.disabled = true;
      out.replaceChildren(el('p', 'training…'));
      setTimeout(() => {
        const cm = trainCharModel();
        out.replaceChildren(el('p', `${cm.model.numParameters()} parameters, 300 AdamW steps: loss ${cm.losses[0]!.toFixed(3)} → ${cm.losses[cm.losses.length - 1]!.toFixed(3)}.`));
        lines(canvas(out, 640, 220, 'loss curve'), [cm.losses], ['training loss']);
        const next = nextCharProbabilities(cm, PROMPT).slice(0, 6);
        out.append(el('p', `After "${PROMPT}", the next character's probabilities (the six likeliest):`));
        bars(canvas(out, 480, 200, 'next character probabilities'), next.map((c) => c.p), next.map((c) => JSON.stringify(c.char)), 1);
        const text = PROMPT + continueText(cm, PROMPT, 60);
        const steps = Array.from({ length: 14 }, (_, i) => [JSON.stringify(text.slice(i, i + WINDOW)), JSON.stringify(text[i + WINDOW])]);
        out.append(el('p', 'The window slides along its own output:'));
        table(out, [`the last ${WINDOW} characters`, 'next'], steps);
        out.append(el('pre', text, 'mono'));
        out.append(el('p', `${WINDOW} characters are not enough to know which line of the rhyme it is on: it goes back to "humpty dumpty sat on a wall" again and again — why models need longer contexts, and attention.`, 'muted'));
        go.disabled = false;
      }, 20);
    });
    root.append(go, out);
  },
};
