import { buildGPT, CONFIG, forwardShapes, parameterFormula, parameterTable } from '../../examples/gpt_architecture.js';
import type { ArticlePage } from './registry.js';
import { el, table } from './draw.js';

/** The GPT's parts with their parameter counts, and the shapes of one forward pass. */
export const gptPage: ArticlePage = {
  id: 'gpt',
  title: 'GPT architecture',
  file: 'examples/gpt_architecture.ts',
  render(root) {
    const model = buildGPT();
    root.append(el('p', `${CONFIG.n_layer} blocks × ${CONFIG.n_head} heads, width ${CONFIG.n_embd}, context ${CONFIG.block_size}, vocabulary ${CONFIG.vocab_size}: ${model.numParameters()} parameters (formula: ${parameterFormula(CONFIG)}).`));
    table(root, ['part', 'parameters'], parameterTable(model).map((r) => [r.part, String(r.count)]));
    table(root, ['stage', 'shape'], forwardShapes(model).map(([s, shape]) => [s, `[${shape.join(', ')}]`]));
  },
};
