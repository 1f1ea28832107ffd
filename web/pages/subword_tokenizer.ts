import { mergeList, pieces, TEXT, train } from '../../examples/subword_tokenizer.js';
import type { ArticlePage } from './registry.js';
import { el, table } from './draw.js';

const show = (s: string): string => s.replace(/ /g, '␣').replace(/\n/g, '⏎');

/** BPE's merges in the order learned, and words cut into the learned pieces. */
export const subwordPage: ArticlePage = {
  id: 'subword',
  title: 'Sub-word tokenizers',
  file: 'examples/subword_tokenizer.ts',
  render(root) {
    const tok = train();
    root.append(el('p', `BPE trained on ${TEXT.length} characters: each merge joins the most frequent adjacent pair. ${tok.encode(TEXT).length} tokens after ${tok.merges.length} merges.`));
    table(root, ['#', 'left', 'right', 'new token'], mergeList(tok).map((m, i) => [String(i + 1), show(m.left), show(m.right), show(m.merged)]));
    for (const w of [' cats', ' hats', ' dogma']) root.append(el('p', `"${show(w)}" → ${pieces(tok, w).map(show).join(' | ')}`, 'mono'));
  },
};
