import { Command } from 'commander';
import { useBackend } from './backend_flags.js';
import { int, seed } from './flags.js';
import { runSample } from './sample.js';
import { runTraining } from './train.js';

/**
 * The demo's model, sized to take about half a minute: the nanoGPT recipe's
 * shape (4 layers, 128 dims) on the native backend, a smaller one on the js
 * backend, which is fifty to a hundred times slower.
 */
const SIZES = {
  native: { nLayer: 4, nHead: 4, nEmbd: 128, maxIters: 1500 },
  js: { nLayer: 2, nHead: 4, nEmbd: 64, maxIters: 300 },
};

/** The first-run experience: train a small GPT on the built-in fables, then sample from it. */
export function demoCommand(): Command {
  return new Command('demo')
    .description('train a small GPT on the built-in fables corpus (no download) for about half a minute, then sample from it')
    .option('--out <dir>', 'where to save the model', 'attn-demo')
    .option('--max-iters <n>', 'training steps (default: 1500 on the native backend, 300 on js)', int)
    .option('--seed <n>', 'random seed', seed, 1337)
    .action(async (o: { out: string; maxIters?: number; seed: number }) => {
      const size = SIZES[useBackend({}).backend.name === 'native' ? 'native' : 'js'];
      const { summary, out } = runTraining(
        { builtin: true, out: o.out },
        { ...size, maxIters: o.maxIters ?? size.maxIters, blockSize: 64, batchSize: 12, warmupIters: 30, evalInterval: 250, evalIters: 10, lr: 3e-3, minLr: 3e-4, seed: o.seed },
      );
      process.stdout.write(JSON.stringify(summary) + '\n');
      process.stdout.write(`\n--- sample from ${out} (attn sample --model ${out}) ---\n`);
      await runSample({ model: out, prompt: 'THE ', maxNewTokens: 400, temperature: 0.8, topK: 200, seed: o.seed }, (s) => process.stdout.write(s));
    });
}
