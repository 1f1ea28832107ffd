/**
 * The article, section "GPT architecture": everything so far, stacked. Token
 * and position embeddings are added; N blocks each do x + attention(LN(x))
 * then x + MLP(LN(x)); a final LayerNorm; and the output head scores every
 * character of the vocabulary (with the token table itself: weight tying).
 * Here the library's GPT at the Humpty Dumpty size, its parameters counted
 * part by part, and the shapes of one forward pass.
 *
 *   npm run build && node dist/examples/gpt_architecture.js
 */
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig, type GPTConfig } from '../src/models/gpt_config.js';
import { noGrad } from '../src/tensor/autograd.js';
import { Rng } from '../src/util/rng.js';
import { isMain } from './is_main.js';

/** The Humpty Dumpty model's sizes (examples/humpty_dumpty.ts). */
export const CONFIG = { n_layer: 2, n_head: 2, n_embd: 32, block_size: 12, vocab_size: 27, dropout: 0, bias: true };

export const buildGPT = (seed = 0): GPT => new GPT(parseGPTConfig(CONFIG), new Rng(seed));

/** Parameter counts grouped by part: embeddings, each block, the final norm. */
export function parameterTable(model: GPT): Array<{ part: string; shapes: string; count: number }> {
  const groups = new Map<string, { shapes: string[]; count: number }>();
  for (const [name, p] of model.namedParameters()) {
    const part = name.startsWith('h.') ? name.split('.').slice(0, 2).join('.') : name.split('.')[0]!;
    const g = groups.get(part) ?? { shapes: [], count: 0 };
    g.shapes.push(`${name.split('.').slice(part.split('.').length).join('.')}[${p.shape.join('×')}]`);
    g.count += p.size;
    groups.set(part, g);
  }
  return [...groups].map(([part, g]) => ({ part, shapes: g.shapes.join(' '), count: g.count }));
}

/**
 * The count by formula: V·C (tokens) + T·C (positions) + per block
 * 12·C² + 13·C (attention 4C² + 4C, MLP 8C² + 5C, two norms 4C) + 2C (final norm);
 * the head adds nothing, it reuses the token table.
 */
export function parameterFormula(c: Pick<GPTConfig, 'vocab_size' | 'block_size' | 'n_embd' | 'n_layer'>): number {
  const C = c.n_embd;
  return c.vocab_size * C + c.block_size * C + c.n_layer * (12 * C * C + 13 * C) + 2 * C;
}

/** The shape after each stage of one forward pass of a batch of one, T tokens. */
export function forwardShapes(model: GPT, T = CONFIG.block_size): Array<[string, number[]]> {
  return noGrad(() => {
    const ids = Int32Array.from({ length: T }, (_, i) => i % model.config.vocab_size);
    const positions = Int32Array.from({ length: T }, (_, i) => i);
    const stages: Array<[string, number[]]> = [['token ids', [1, T]]];
    let x = model.embed(ids, [1, T], positions);
    stages.push(['token + position vectors', x.shape]);
    model.h.forEach((block, i) => {
      x = block.forward(x);
      stages.push([`after block ${i + 1}`, x.shape]);
    });
    x = model.ln_f.forward(x);
    stages.push(['final LayerNorm', x.shape]);
    stages.push(['scores for the next character', model.lm_head.forward(x).shape]);
    return stages;
  });
}

function main(): void {
  const model = buildGPT();
  console.log(`GPT: ${CONFIG.n_layer} blocks, ${CONFIG.n_head} heads, width ${CONFIG.n_embd}, context ${CONFIG.block_size}, vocabulary ${CONFIG.vocab_size}`);
  for (const r of parameterTable(model)) console.log(`  ${r.part.padEnd(5)} ${String(r.count).padStart(6)}  ${r.shapes}`);
  console.log(`total ${model.numParameters()}; by formula V·C + T·C + N·(12C² + 13C) + 2C = ${parameterFormula(CONFIG)}`);
  console.log('\none forward pass:');
  for (const [stage, shape] of forwardShapes(model)) console.log(`  ${stage.padEnd(30)} [${shape.join(', ')}]`);
}

if (isMain(import.meta.url)) main();
