import { characterTable, lookUp, pieceTable, wordByConcat, wordBySum } from '../../examples/embeddings.js';
import type { ArticlePage } from './registry.js';
import { canvas, el, heatmap } from './draw.js';

/** Character vectors as rows of colour, and "cats" as sum vs concatenation of "cat" + "s". */
export const embeddingsPage: ArticlePage = {
  id: 'embeddings',
  title: 'Embeddings',
  file: 'examples/embeddings.ts',
  render(root) {
    const { tokenizer, table } = characterTable();
    root.append(el('p', 'Each character is a learned vector (a row of the Embedding table): here the 4 numbers of c, a, t, s.'));
    heatmap(canvas(root, 420, 160, 'character vectors'), lookUp(table, tokenizer, 'cats'), ['c', 'a', 't', 's'], ['1', '2', '3', '4']);
    const p = pieceTable();
    root.append(el('p', '"cats" = "cat" + "s": the sum keeps 4 numbers (and forgets order); the concatenation keeps order with 8.'));
    heatmap(canvas(root, 640, 160, 'word vectors'), [
      [...wordBySum(p, ['cat']), 0, 0, 0, 0],
      [...wordBySum(p, ['s']), 0, 0, 0, 0],
      [...wordBySum(p, ['cat', 's']), 0, 0, 0, 0],
      wordByConcat(p, ['cat', 's']),
    ], ['cat', 's', 'sum', 'concat'], ['1', '2', '3', '4', '5', '6', '7', '8']);
  },
};
