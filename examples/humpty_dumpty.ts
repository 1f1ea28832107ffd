/**
 * The article, section "How does all this generate language?": a model that
 * reads the last 12 characters and predicts the next one, then slides the
 * window along its own output to write more. Here the model is the library's
 * GPT at toy size, trained on a nursery rhyme.
 *
 *   npm run build && node dist/examples/humpty_dumpty.js
 */
import type * as BackendSelect from '../src/backend/select.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { AdamW } from '../src/optim/adamw.js';
import { learningRate } from '../src/optim/schedule.js';
import { backward, noGrad } from '../src/tensor/autograd.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { Rng } from '../src/util/rng.js';
import { isMain } from './is_main.js';

export const RHYME = `humpty dumpty sat on a wall,
humpty dumpty had a great fall.
all the king's horses and all the king's men
couldn't put humpty together again.
`;

/** The article's context length: the model never sees more than 12 characters. */
export const WINDOW = 12;

export interface CharModel {
  model: GPT;
  tokenizer: CharTokenizer;
  losses: number[];
}

/**
 * Train a tiny GPT to predict each next character of RHYME from (at most)
 * the 12 before it: random 12-character windows, the targets being the same
 * windows shifted by one.
 */
export function trainCharModel({ steps = 300, batchSize = 16, lr = 1e-2, seed = 42 } = {}): CharModel {
  const tokenizer = CharTokenizer.fromText(RHYME);
  const ids = tokenizer.encode(RHYME);
  const config = parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 32, block_size: WINDOW, vocab_size: tokenizer.vocabSize, dropout: 0, bias: true });
  const model = new GPT(config, new Rng(seed));
  const opt = new AdamW(model.namedParameters(), { lr, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0 });
  const rng = new Rng(seed + 1);
  const losses: number[] = [];
  for (let step = 0; step < steps; step++) {
    const x = new Int32Array(batchSize * WINDOW);
    const y = new Int32Array(batchSize * WINDOW);
    for (let b = 0; b < batchSize; b++) {
      const start = rng.int(ids.length - WINDOW);
      x.set(ids.subarray(start, start + WINDOW), b * WINDOW);
      y.set(ids.subarray(start + 1, start + WINDOW + 1), b * WINDOW);
    }
    model.zeroGrad();
    const { loss } = model.forward(x, [batchSize, WINDOW], y);
    losses.push(loss!.item());
    backward(loss!);
    // Warm up, then decay: the last steps settle instead of bouncing around the minimum.
    opt.update(learningRate(step, { lr, minLr: lr / 10, warmupIters: 20, decayIters: steps }));
  }
  model.eval();
  return { model, tokenizer, losses };
}

/** Greedy continuation: feed the last 12 characters, take the likeliest next one, slide, repeat. */
export function continueText({ model, tokenizer }: CharModel, prompt: string, count: number): string {
  let text = prompt;
  noGrad(() => {
    for (let i = 0; i < count; i++) {
      const window = tokenizer.encode(Array.from(text).slice(-WINDOW).join(''));
      const logits = model.nextTokenLogits(window, [1, window.length]).data;
      let best = 0;
      for (let v = 1; v < logits.length; v++) if (logits[v]! > logits[best]!) best = v;
      text += tokenizer.decode([best]);
    }
  });
  return text.slice(prompt.length);
}

/**
 * The backend chooser is Node-only (it loads the native addon), and the
 * playground's page imports this file: so the command line loads it here,
 * by a name the page's bundler does not follow. The page trains on js.
 */
async function nodeBackend(): Promise<void> {
  const where = '../src/backend/select.js';
  const { selectBackend } = (await import(/* @vite-ignore */ where)) as typeof BackendSelect;
  selectBackend('auto');
}

/** The next character's probabilities after `prompt` (its last 12 characters), likeliest first. */
export function nextCharProbabilities({ model, tokenizer }: CharModel, prompt: string): Array<{ char: string; p: number }> {
  const window = tokenizer.encode(Array.from(prompt).slice(-WINDOW).join(''));
  const logits = noGrad(() => model.nextTokenLogits(window, [1, window.length])).data;
  const max = Math.max(...logits);
  const w = Array.from(logits, (v) => Math.exp(v - max));
  const z = w.reduce((a, b) => a + b, 0);
  return w.map((v, id) => ({ char: tokenizer.decode([id]), p: v / z })).sort((a, b) => b.p - a.p);
}

async function main(): Promise<void> {
  await nodeBackend();
  const t0 = performance.now();
  const cm = trainCharModel();
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`trained a ${cm.model.numParameters()}-parameter GPT on ${RHYME.length} characters (vocabulary of ${cm.tokenizer.vocabSize}) in ${secs}s`);
  console.log(`loss: ${cm.losses[0]!.toFixed(3)} at the start, ${cm.losses[cm.losses.length - 1]!.toFixed(3)} at the end`);
  const prompt = 'humpty dumpt';
  const next = nextCharProbabilities(cm, prompt).slice(0, 3).map((c) => `"${c.char}" ${c.p.toFixed(3)}`).join(', ');
  console.log(`\n"${prompt}" → next character "${continueText(cm, prompt, 1)}" (likeliest: ${next})`);
  console.log(`sliding the 12-character window along:\n${prompt}${continueText(cm, prompt, 140)}`);
}

if (isMain(import.meta.url)) void main();
