import { captionTest, lookWhere, testPicture, trainCaptionDemo } from '../../examples/captioning.js';
import { attentionOverlay } from '../../src/util/attention_overlay.js';
import type { ArticlePage } from './registry.js';
import { canvas, el, lines, table } from './draw.js';

/** How many test pictures the page shows with their cross-attention. */
const SHOWN = 3;

/**
 * Train the small captioner on demand, then: its loss curve, its scores on
 * new pictures, and for a few of them the caption it writes with, word by
 * word, where its cross-attention looked (a heatmap over the picture).
 */
export const captioningPage: ArticlePage = {
  id: 'captioning',
  title: 'Multi-modal: captioning pictures',
  file: 'examples/captioning.ts',
  render(root) {
    root.append(el('p', 'From the lecture: a ViT reads the picture as 24 patch tokens (7×7 pixels each); a text decoder writes the caption word by word, and its cross-attention reads those patch tokens. The captions come from what attn measures on each picture: brightness, size (how much of its square the item covers) and position.'));
    const go = el('button', 'Train the captioner (about half a minute)', 'primary');
    go.id = 'train-captioner';
    const out = el('div');
    go.addEventListener('click', () => {
      go.disabled = true;
      out.replaceChildren(el('p', 'training…'));
      setTimeout(() => {
        const demo = trainCaptionDemo();
        const s = captionTest(demo);
        out.replaceChildren(el('p', `${demo.model.numParameters()} parameters, ${demo.losses.length} AdamW steps on ${demo.train.images.count} pictures: loss ${demo.losses[0]!.toFixed(3)} → ${demo.losses[demo.losses.length - 1]!.toFixed(3)}.`));
        lines(canvas(out, 640, 200, 'loss curve'), [demo.losses], ['caption loss (cross-entropy per word)']);
        table(out, ['on new pictures', 'score'], [
          ['class word right', `${(100 * s.class_word_accuracy).toFixed(1)}%`],
          ['measured properties right', `${(100 * s.property_accuracy).toFixed(1)}%`],
          ['BLEU-4 against the references', s.bleu4.toFixed(3)],
        ]);
        out.append(el('p', 'Where the decoder looked while writing each word (last layer\'s cross-attention, heads averaged; bright = more weight; each panel scaled to its own largest weight):'));
        const { height, width } = demo.test.images;
        for (let n = 0; n < SHOWN; n++) {
          const a = lookWhere(demo, n);
          out.append(el('p', `wrote "${s.written[n]}" — reference "${demo.test.captions[n]}"`, 'mono'));
          const pic = attentionOverlay({ pixels: testPicture(demo, n), height, width, patch: demo.model.config.image.patch_size }, a.patches, 3);
          const c = el('canvas');
          c.width = pic.width;
          c.height = pic.height;
          c.className = 'caption-attention';
          c.setAttribute('aria-label', `cross-attention per word over test picture ${n + 1}`);
          c.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(pic.rgba), pic.width, pic.height), 0, 0);
          out.append(c, el('p', `panels, left to right: ${a.words.join(' · ')}`, 'muted'));
        }
        go.disabled = false;
      }, 20);
    });
    root.append(go, out);
  },
};
