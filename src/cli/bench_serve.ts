import { Command } from 'commander';
import { benchServe } from '../bench/serve.js';
import { UserError } from '../util/errors.js';
import { int, natural, posInt } from './flags.js';

interface BenchServeCliOptions {
  streams: string;
  duration: number;
  warmup: number;
  /** bench's own --config, --threads, --backend and --json apply (commander gives them to the parent). */
  config?: string;
  model?: string;
  url?: string;
  name: string;
  promptTokens: number;
  maxTokens: number;
  threads?: number;
  backend?: string;
  rssEvery: number;
  adapters?: number;
  json?: boolean;
}

/** `attn bench serve`: the load benchmark of `attn serve` (src/bench/serve.ts). */
export function benchServeCommand(): Command {
  return new Command('serve')
    .description(
      'load-test attn serve: N concurrent streaming clients on loopback for a fixed time each; aggregate tokens/s, TTFT p50/p95/p99, errors, server RSS. ' +
        "bench's --config (124M or S, the random-weight model's shape; default 124M), --threads, --backend (the server's) and --json apply",
    )
    .option('--streams <list>', 'concurrent clients, one measurement each', '1,4,16,64')
    .option('--duration <s>', 'seconds per measurement', int, 20)
    .option('--warmup <s>', 'seconds the clients run before each measurement starts', natural, 10)
    .option('--model <dir>', 'serve this model directory instead (its tokenizer must be the bench\'s: use --url for others)')
    .option('--url <url>', 'drive a server already running here instead of starting one')
    .option('--name <model>', 'with --url: the model name to request', 'bench')
    .option('--prompt-tokens <n>', 'prompt length of each request', posInt, 16)
    .option('--max-tokens <n>', 'tokens generated per request', posInt, 64)
    .option('--adapters <n>', 'also serve n LoRA adapters (r 8 on c_attn, c_fc) over the model and measure each stream count spread over them, beside the base alone', posInt)
    .option('--rss-every <s>', 'seconds between samples of the server\'s resident memory', posInt, 5)
    .action(async (_o: unknown, cmd: Command) => {
      const o = cmd.optsWithGlobals<BenchServeCliOptions>();
      const config = o.config ?? '124M';
      if (config !== '124M' && config !== 'S') throw new UserError(`--config: the serve benchmark takes 124M or S, got "${config}"`);
      const streams = o.streams.split(',').map((s) => Number(s.trim()));
      if (streams.some((n) => !(Number.isInteger(n) && n >= 1))) throw new UserError(`--streams: expected positive integers, got "${o.streams}"`);
      if (o.duration < 1) throw new UserError('--duration must be ≥ 1 second');
      const rows = await benchServe({
        streams,
        seconds: o.duration,
        warmup: o.warmup,
        config,
        promptTokens: o.promptTokens,
        maxTokens: o.maxTokens,
        ...(o.backend !== undefined ? { backend: o.backend } : {}),
        rssEvery: o.rssEvery,
        ...(o.adapters ? { adapters: o.adapters } : {}),
        ...(o.model !== undefined ? { modelDir: o.model } : {}),
        ...(o.url !== undefined ? { url: o.url, model: o.name } : {}),
        ...(o.threads !== undefined ? { threads: o.threads } : {}),
        log: (line) => (o.json ? process.stderr : process.stdout).write(`${line}\n`),
      });
      if (o.json) for (const r of rows) console.log(JSON.stringify(r));
    });
}
