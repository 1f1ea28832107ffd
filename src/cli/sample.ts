import { Command } from 'commander';
import { generate } from '../generate/generate.js';
import { UserError } from '../io/errors.js';
import { loadModel } from '../io/model_dir.js';
import { streamDecoder, type Tokenizer } from '../tokenizers/tokenizer.js';
import { useBackend, withBackendFlags } from './backend_flags.js';
import { int, num } from './flags.js';

export interface SampleCliOptions {
  model: string;
  prompt?: string;
  maxNewTokens: number;
  temperature: number;
  topK?: number;
  topP?: number;
  seed: number;
  greedy?: boolean;
  backend?: string;
  threads?: number;
}

/** Load a model directory and stream a continuation of the prompt to `write`. */
export function runSample(o: SampleCliOptions, write: (s: string) => void): void {
  if (o.temperature < 0) throw new UserError('--temperature must be ≥ 0');
  if (o.topK !== undefined && o.topK < 1) throw new UserError('--top-k must be ≥ 1');
  if (o.topP !== undefined && (o.topP <= 0 || o.topP > 1)) throw new UserError('--top-p must be in (0, 1]');
  if (o.maxNewTokens < 0) throw new UserError('--max-new-tokens must be ≥ 0');
  useBackend(o);
  const { model, tokenizer } = loadModel(o.model);
  if (!tokenizer) throw new UserError(`${o.model} has no tokenizer.json, so a text prompt cannot be encoded`);
  let ids: Int32Array;
  try {
    // A special token typed in the prompt (e.g. <|endoftext|>) means the token.
    ids = tokenizer.encode(o.prompt ?? startText(tokenizer), { allowedSpecial: 'all' });
  } catch (e) {
    throw new UserError(`--prompt: ${(e as Error).message}`);
  }
  if (ids.length === 0) ids = Int32Array.of(0);
  const decode = streamDecoder(tokenizer); // byte-level tokens may cut a character in two
  for (const id of ids) write(decode(id));
  const stream = generate(model, ids, {
    maxNewTokens: o.maxNewTokens,
    temperature: o.temperature,
    seed: o.seed,
    ...(o.topK !== undefined ? { topK: o.topK } : {}),
    ...(o.topP !== undefined ? { topP: o.topP } : {}),
    ...(o.greedy ? { greedy: true } : {}),
  });
  for (const id of stream) write(decode(id));
  write('\n');
}

/** With no prompt, start from a newline as nanoGPT does — or, if the vocabulary has none, from token 0. */
function startText(tokenizer: Tokenizer): string {
  try {
    tokenizer.encode('\n');
    return '\n';
  } catch {
    return tokenizer.decode([0]);
  }
}

export function sampleCommand(): Command {
  return withBackendFlags(new Command('sample'))
    .description('generate text from a trained model, streamed to stdout')
    .requiredOption('--model <dir>', 'model directory (from attn train)')
    .option('--prompt <text>', 'text to continue (default: a newline)')
    .option('--max-new-tokens <n>', 'tokens to generate', int, 500)
    .option('--temperature <t>', 'sampling temperature; 0 = greedy', num, 0.8)
    .option('--top-k <k>', 'sample only among the k most likely tokens', int, 200)
    .option('--top-p <p>', 'nucleus sampling: smallest set of tokens with total probability ≥ p', num)
    .option('--seed <n>', 'random seed', int, 1337)
    .option('--greedy', 'always take the most likely token')
    .action((opts: SampleCliOptions) => runSample(opts, (s) => process.stdout.write(s)));
}
