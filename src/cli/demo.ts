import { Command } from 'commander';
import { int } from './flags.js';
import { runSample } from './sample.js';
import { runTraining } from './train.js';

/** The first-run experience: train a small GPT on the built-in fables, then sample from it. */
export function demoCommand(): Command {
  return new Command('demo')
    .description('train a small GPT on the built-in fables corpus (no download) for a minute or two, then sample from it')
    .option('--out <dir>', 'where to save the model', 'attn-demo')
    .option('--max-iters <n>', 'training steps', int, 300)
    .option('--seed <n>', 'random seed', int, 1337)
    .action(async (o: { out: string; maxIters: number; seed: number }) => {
      const { summary, out } = runTraining(
        { builtin: true, out: o.out },
        { nLayer: 2, nHead: 4, nEmbd: 64, blockSize: 64, batchSize: 12, maxIters: o.maxIters, warmupIters: 30, evalInterval: 100, evalIters: 10, lr: 3e-3, minLr: 3e-4, seed: o.seed },
      );
      process.stdout.write(JSON.stringify(summary) + '\n');
      process.stdout.write(`\n--- sample from ${out} (attn sample --model ${out}) ---\n`);
      await runSample({ model: out, prompt: 'THE ', maxNewTokens: 400, temperature: 0.8, topK: 200, seed: o.seed }, (s) => process.stdout.write(s));
    });
}
