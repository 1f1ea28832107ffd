import { Command, Option } from 'commander';
import { perplexityAsync } from '../eval/perplexity.js';
import { moveToBackend } from '../nn/placement.js';
import { UserError } from '../util/errors.js';
import { loadModel } from '../io/model_dir.js';
import { useBackendAsync, withBackendFlags } from './backend_flags.js';
import { int } from './flags.js';
import { readTextFile } from '../io/read_text.js';

export interface EvalCliOptions {
  model: string;
  data: string;
  split: 'all' | 'train' | 'val';
  window?: number;
  stride?: number;
  batchSize: number;
  json?: boolean;
  backend?: string;
  threads?: number;
}

/** Loss and perplexity of a model on a text; `split` picks attn train's 90/10 parts of its tokens. On any backend, webgpu included. */
export async function runEval(o: EvalCliOptions): Promise<{ loss: number; perplexity: number; tokens: number; split: string }> {
  if (o.batchSize < 1) throw new UserError('--batch-size must be ≥ 1');
  await useBackendAsync(o);
  const { model, tokenizer } = loadModel(o.model);
  moveToBackend(model); // a device backend: the weights uploaded once (nothing on host backends)
  if (!tokenizer) throw new UserError(`${o.model} has no tokenizer, so the text cannot be encoded`);
  const text = readTextFile(o.data);
  let ids: Int32Array;
  try {
    ids = tokenizer.encode(text, { allowedSpecial: 'all' });
  } catch (e) {
    throw new UserError(`--data ${o.data}: ${(e as Error).message}`);
  }
  const cut = Math.floor(ids.length * 0.9); // the same split as attn train
  const part = o.split === 'train' ? ids.subarray(0, cut) : o.split === 'val' ? ids.subarray(cut) : ids;
  const r = await perplexityAsync(model, part, {
    batchSize: o.batchSize,
    ...(o.window !== undefined ? { window: o.window } : {}),
    ...(o.stride !== undefined ? { stride: o.stride } : {}),
  });
  return { ...r, split: o.split };
}

export function evalCommand(): Command {
  return withBackendFlags(new Command('eval'), { webgpu: true })
    .description('loss and perplexity of a model on a text file')
    .requiredOption('--model <dir>', 'model directory (ours, quantized, or a Hugging Face GPT-2, Llama, Qwen2 or Mistral)')
    .requiredOption('--data <file>', 'UTF-8 text to score')
    .addOption(new Option('--split <part>', 'score all of the text, or the train/val part attn train would use (first 90% / last 10% of tokens)').choices(['all', 'train', 'val']).default('all'))
    .option('--window <n>', 'tokens of context per window (default: the model\'s block size)', int)
    .option('--stride <n>', 'new tokens scored per window (default: the window; smaller = more context per token, slower)', int)
    .option('--batch-size <n>', 'windows per forward pass', int, 4)
    .option('--json', 'print one JSON line')
    .action(async (o: EvalCliOptions) => {
      const r = await runEval(o);
      if (o.json) process.stdout.write(JSON.stringify(r) + '\n');
      else process.stdout.write(`loss ${r.loss.toFixed(4)}  perplexity ${r.perplexity.toFixed(3)}  (${r.tokens} tokens, split ${r.split})\n`);
    });
}
