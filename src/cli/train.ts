import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, Option } from 'commander';
import { UserError } from '../util/errors.js';
import { parseTrainOptions, type TrainOptionsInput } from '../train/options.js';
import { TRAIN_PRESETS } from '../train/presets.js';
import { train, trainAsync, type TrainEvents, type TrainRun, type TrainSummary } from '../train/trainer.js';
import { fablesCorpus } from '../data/fables.js';
import { bf16Fallback, describeBackend } from '../backend/select.js';
import type { Backend } from '../backend/backend.js';
import { openedWebGpu } from '../backend/webgpu/index.js';
import { withBackendFlags, useBackend, useBackendAsync } from './backend_flags.js';
import { int, num, seed } from './flags.js';
import { checkOutDir } from './out_dir.js';
import { Progress } from './progress.js';
import { readTextFile } from '../io/read_text.js';
import { loadModel } from '../io/model_dir.js';
import type { CausalLM } from '../models/causal_lm.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { tokenizerProgress } from './tokenize.js';

/** Flag table: [flag, options key, parser, help]. Defaults come from TrainOptionsSchema. */
const HYPER: Array<[string, keyof TrainOptionsInput, (v: string) => number, string]> = [
  ['--n-layer <n>', 'nLayer', int, 'transformer blocks (default 4)'],
  ['--n-head <n>', 'nHead', int, 'attention heads per block (default 4)'],
  ['--n-embd <n>', 'nEmbd', int, 'embedding width; divisible by --n-head (default 128)'],
  ['--block-size <n>', 'blockSize', int, 'context length in tokens (default 64)'],
  ['--dropout <p>', 'dropout', num, 'dropout probability (default 0)'],
  ['--batch-size <n>', 'batchSize', int, 'sequences per micro-batch (default 12)'],
  ['--grad-accum <n>', 'gradAccum', int, 'micro-batches per optimizer step (default 1)'],
  ['--max-iters <n>', 'maxIters', int, 'optimizer steps (default 2000)'],
  ['--lr <x>', 'lr', num, 'peak learning rate (default 1e-3)'],
  ['--min-lr <x>', 'minLr', num, 'learning rate at the end of the cosine decay (default: --lr / 10)'],
  ['--warmup-iters <n>', 'warmupIters', int, 'linear warm-up steps (default 100)'],
  ['--lr-decay-iters <n>', 'lrDecayIters', int, 'steps of cosine decay (default: --max-iters)'],
  ['--beta1 <x>', 'beta1', num, 'AdamW β1 (default 0.9)'],
  ['--beta2 <x>', 'beta2', num, 'AdamW β2 (default 0.99)'],
  ['--eps <x>', 'eps', num, 'AdamW ε in the denominator (default 1e-8)'],
  ['--weight-decay <x>', 'weightDecay', num, 'AdamW decoupled weight decay on 2-D weights (default 0.1)'],
  ['--muon-lr <x>', 'muonLr', num, '--optimizer muon: peak learning rate of the orthogonalised updates (default 0.02; --lr stays AdamW\'s, for the embeddings, head and norms)'],
  ['--muon-momentum <x>', 'muonMomentum', num, '--optimizer muon: Nesterov momentum, in [0, 1) (default 0.95)'],
  ['--muon-ns-steps <n>', 'muonNsSteps', int, '--optimizer muon: Newton–Schulz iterations per update, 1 to 20 (default 5)'],
  ['--muon-weight-decay <x>', 'muonWeightDecay', num, '--optimizer muon: decoupled weight decay on the Muon matrices (default 0)'],
  ['--grad-clip <x>', 'gradClip', num, 'clip the global gradient norm to this; 0 disables (default 1.0)'],
  ['--eval-interval <n>', 'evalInterval', int, 'evaluate and checkpoint every n steps (default 250)'],
  ['--eval-iters <n>', 'evalIters', int, 'batches per split in each evaluation (default 20)'],
  ['--log-interval <n>', 'logInterval', int, 'steps between progress lines when not on a terminal (default 10)'],
  ['--time-limit <s>', 'timeLimit', num, 'stop in time to evaluate and save within this many seconds of the command\'s start; the learning-rate decay follows the clock; 0: no limit (e.g. to compare a preset at equal steps) (default: none)'],
  ['--ema <decay>', 'ema', num, 'evaluate and save an exponential moving average of the weights (e.g. 0.995: a horizon of ~200 steps) instead of the last weights; the checkpoint keeps the trained weights for --resume (default: none)'],
  ['--average-from <f>', 'averageFrom', num, 'evaluate and save the mean of the weights after every step from this share of the run on (e.g. 0.75) instead of the last weights (default: none)'],
  ['--seed <n>', 'seed', seed, 'random seed for initialisation, batches and dropout (default 1337)'],
  ['--vocab-size <n>', 'vocabSize', int, 'tokenizer vocabulary: the cap for word (default 4096), the target for bpe (default 512)'],
];

export interface TrainCliResult {
  summary: TrainSummary;
  out: string;
}

/** The flag that sets an options key: nLayer → --n-layer. */
const flagName = (key: string): string => '--' + key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase());

const BUILTIN = 'builtin:fables';

/** The text to train on: --builtin, --data, or (resuming without --data) the checkpoint's own. */
function resolveText(args: { data?: string; resume?: string; builtin?: boolean }): { text: string; dataPath: string } {
  if (args.builtin) return { text: fablesCorpus(), dataPath: BUILTIN };
  if (args.data) return { text: readTextFile(args.data), dataPath: args.data };
  const statePath = join(args.resume!, 'trainer.json');
  let path: unknown;
  try {
    path = (JSON.parse(readFileSync(statePath, 'utf8')) as { data?: { path?: unknown } }).data?.path;
  } catch {
    throw new UserError(`--resume ${args.resume}: cannot read ${statePath}; pass --data FILE`);
  }
  if (typeof path !== 'string') throw new UserError(`${statePath} does not record the training data; pass --data FILE`);
  return path === BUILTIN ? { text: fablesCorpus(), dataPath: BUILTIN } : { text: readTextFile(path), dataPath: path };
}

type TrainCliArgs = { data?: string; out: string; resume?: string; init?: string; distillFrom?: string; builtin?: boolean; backend?: string; threads?: number };

/** Train from the CLI's arguments on a host backend (js, native), printing progress on stderr. */
export function runTraining(args: TrainCliArgs, raw: TrainOptionsInput): TrainCliResult {
  const { run, events } = cliRun(args, raw, useBackend(args).backend);
  return { summary: train(run, events), out: args.out };
}

/** runTraining on any backend, webgpu included (its device opened first). */
export async function runTrainingAsync(args: TrainCliArgs, raw: TrainOptionsInput): Promise<TrainCliResult> {
  const { backend } = await useBackendAsync(args);
  const { run, events } = cliRun(args, raw, backend);
  return { summary: await trainAsync(run, events), out: args.out };
}

function parse(raw: TrainOptionsInput): ReturnType<typeof parseTrainOptions> {
  try {
    return parseTrainOptions(raw);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
}

/**
 * Test hook (documented in docs/webgpu_training.md): ATTN_TEST_LOSE_DEVICE_AFTER_STEP=N
 * destroys the WebGPU device after step N, as a driver reset or an unplugged
 * GPU would, so a test can check that the run stops with one line and the last
 * checkpoint intact.
 */
function loseDeviceAfter(): number | null {
  const v = process.env.ATTN_TEST_LOSE_DEVICE_AFTER_STEP;
  return v ? Number(v) : null;
}

/** The run and the progress printing, whichever backend trains. */
function cliRun(args: TrainCliArgs, raw: TrainOptionsInput, backend: Backend): { run: TrainRun; events: TrainEvents } {
  const options = parse(raw);
  const { text, dataPath } = resolveText(args);
  checkOutDir(args.out, 'language-model');
  const description = describeBackend(backend);
  const progress = new Progress(options.logInterval);
  if (options.precision === 'bf16') {
    const note = bf16Fallback(backend);
    if (note) process.stderr.write(`note: ${note}\n`);
  }
  const loseAt = backend.name === 'webgpu' ? loseDeviceAfter() : null;
  return {
    run: { text, dataPath, options, out: args.out, ...(args.resume ? { resume: args.resume } : {}), ...(args.init ? { init: args.init } : {}), ...(args.distillFrom ? { teacher: loadTeacher(args.distillFrom) } : {}) },
    events: {
      onStart: (i) => {
        progress.line(
          `${i.resumedFrom ? `resuming from step ${i.resumedFrom}` : 'training'}: ${(i.params / 1e6).toFixed(2)}M parameters, vocab ${i.vocabSize}, ` +
            `${i.trainTokens} train / ${i.valTokens} val tokens, backend ${description}`,
        );
        if (i.resumedFrom && i.resumedFrom >= i.maxIters) process.stderr.write(`note: the checkpoint is already at step ${i.resumedFrom} ≥ --max-iters ${i.maxIters}: nothing to train; pass a larger --max-iters to continue\n`);
      },
      onStep: (s) => {
        progress.step(s);
        if (s.step === loseAt) openedWebGpu()?.device.destroy();
      },
      onEval: (e) => progress.eval(e),
      onCheckpoint: (c) => progress.line(`saved checkpoint at step ${c.step} to ${c.dir}`),
      onTokenizerProgress: tokenizerProgress(`training ${options.tokenizer} tokenizer`),
    },
  };
}

/** The model `--distill-from DIR` trains toward, with its tokenizer (a fresh student takes it). */
function loadTeacher(dir: string): { model: CausalLM; tokenizer: Tokenizer } {
  const { model, tokenizer } = loadModel(dir);
  if (!tokenizer) throw new UserError(`--distill-from ${dir}: the model has no tokenizer`);
  return { model, tokenizer };
}

export function trainCommand(): Command {
  const cmd = new Command('train')
    .description('train a GPT (or, with --arch llama, a Llama-family model) on a UTF-8 text file (character tokens and nanoGPT\'s CPU recipe by default)')
    .option('--data <file>', 'training text (UTF-8); 90% trains, 10% validates')
    .option('--builtin', 'train on the built-in generated fables corpus instead of --data')
    .option('--out <dir>', 'checkpoint directory', 'out')
    .option('--resume <dir>', 'continue training from this checkpoint (writes back to it unless --out is given)')
    .option('--init <dir>', 'fine-tune: start from this model\'s weights and tokenizer (ours, or a Hugging Face GPT-2, Llama, Qwen2 or Mistral directory) instead of random ones')
    .option('--distill-from <dir>', 'distillation: learn this (larger) model\'s next-token distributions (KL to them) instead of the text\'s next tokens, with its tokenizer; how a draft for `attn sample --draft` is made')
    .option('--bias', 'use biases in Linear and LayerNorm layers (nanoGPT recipe: off)')
    .addOption(new Option('--tokenizer <kind>', 'tokens: characters, characters with numbers whole (digits), words, or byte-level BPE trained on --data').choices(['char', 'digits', 'word', 'bpe']))
    .addOption(new Option('--positions <kind>', 'position information: learned vectors added to the input (GPT-2), or rope (rotated queries and keys)').choices(['learned', 'rope']))
    .addOption(new Option('--arch <family>', 'model family: gpt (GPT-2 blocks) or llama (RMSNorm, rotary positions, grouped-query attention, SwiGLU)').choices(['gpt', 'llama']))
    .option('--n-kv-head <n>', '--arch llama: key/value heads for grouped-query attention (default: --n-head)', (v: string) => Number(v))
    .addOption(new Option('--optimizer <name>', 'adamw for every parameter, or muon (momentum orthogonalised by Newton–Schulz, Keller Jordan\'s Muon) for the blocks\' weight matrices with AdamW for the embeddings, head, norms and biases; host backends').choices(['adamw', 'muon']))
    .addOption(new Option('--precision <p>', 'matrix products in fp32, or bf16 operands with FP32 sums (weights, optimizer state, loss and checkpoints stay FP32)').choices(['fp32', 'bf16']))
    .option('--recompute', 'activation recomputation: keep only each block\'s input, recompute the block in the backward pass, and score the loss in chunks of rows without the whole logits (less memory, the same gradients within rounding, somewhat slower)')
    .addOption(new Option('--preset <name>', `a named recipe (flags given beside it override its settings): ${Object.entries(TRAIN_PRESETS).map(([k, p]) => `${k}: ${p.description}`).join('; ')}`).choices(Object.keys(TRAIN_PRESETS)));
  withBackendFlags(cmd, { webgpu: true });
  for (const [flag, , parse, help] of HYPER) cmd.option(flag, help, parse);
  cmd.action(async (opts: Record<string, unknown>) => {
    const preset = opts.preset ? TRAIN_PRESETS[opts.preset as string]! : null;
    if (preset && (opts.resume || opts.init)) throw new UserError('--preset starts a fresh run; it excludes --resume and --init');
    if (preset && !opts.data && !opts.builtin) {
      if (!existsSync(preset.defaultData)) {
        throw new UserError(`--preset ${String(opts.preset)} trains on tinyshakespeare, and ${preset.defaultData} is not there; pass --data FILE (https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt)`);
      }
      opts.data = preset.defaultData;
    }
    if (!opts.data && !opts.builtin && !opts.resume) throw new UserError('train needs --data FILE (or --builtin, or --resume DIR)');
    const raw: Record<string, unknown> = { ...preset?.options };
    for (const [, key] of HYPER) if (opts[key] !== undefined) raw[key] = opts[key];
    // One weight average: the one named on the command line replaces the preset's.
    if (opts.ema !== undefined && opts.averageFrom === undefined) delete raw.averageFrom;
    if (opts.averageFrom !== undefined && opts.ema === undefined) delete raw.ema;
    if (opts.bias) raw.bias = true;
    if (opts.tokenizer) raw.tokenizer = opts.tokenizer;
    if (opts.positions) raw.positions = opts.positions;
    if (opts.arch) raw.arch = opts.arch;
    if (opts.nKvHead !== undefined) raw.nKvHead = opts.nKvHead;
    if (opts.precision) raw.precision = opts.precision;
    if (opts.optimizer) raw.optimizer = opts.optimizer;
    const muonFlags = (['muonLr', 'muonMomentum', 'muonNsSteps', 'muonWeightDecay'] as const).filter((k) => opts[k] !== undefined);
    if (muonFlags.length && raw.optimizer !== 'muon') throw new UserError(`${flagName(muonFlags[0]!)} applies to --optimizer muon`);
    // --time-limit 0: no clock (a preset compared at equal steps).
    if (raw.timeLimit === 0) delete raw.timeLimit;
    if (opts.recompute) raw.recompute = true;
    if (raw.arch === 'llama' && (opts.positions || opts.bias)) throw new UserError('--positions and --bias describe the GPT; --arch llama always uses rotary positions and no biases');
    if (raw.nKvHead !== undefined && raw.arch !== 'llama') throw new UserError('--n-kv-head applies to --arch llama');
    if (opts.init && opts.resume) throw new UserError('--init and --resume exclude each other: --resume continues its own run');
    if (opts.init) {
      const ignored = ['nLayer', 'nHead', 'nEmbd', 'vocabSize', 'positions', 'arch', 'nKvHead', 'tokenizer', 'bias'].filter((k) => raw[k] !== undefined);
      if (ignored.length) process.stderr.write(`note: --init takes the model's family, sizes and tokenizer from ${String(opts.init)}; ignoring ${ignored.map(flagName).join(', ')}\n`);
    }
    if (opts.resume) {
      const ignored = Object.keys(raw).filter((k) => k !== 'maxIters');
      // (precision and recompute do not change what is learned, but a resumed run keeps its checkpoint's settings as a whole)
      if (ignored.length) process.stderr.write(`note: on --resume only --max-iters applies; the checkpoint's settings are kept (ignoring ${ignored.map(flagName).join(', ')})\n`);
    }
    const out = cmd.getOptionValueSource('out') === 'cli' || !opts.resume ? (opts.out as string) : (opts.resume as string);
    const { summary } = await runTrainingAsync(
      {
        ...(opts.data ? { data: opts.data as string } : {}),
        builtin: Boolean(opts.builtin),
        backend: opts.backend as string,
        ...(opts.threads !== undefined ? { threads: opts.threads as number } : {}),
        out,
        ...(opts.resume ? { resume: opts.resume as string } : {}),
        ...(opts.init ? { init: opts.init as string } : {}),
        ...(opts.distillFrom ? { distillFrom: opts.distillFrom as string } : {}),
      },
      raw as TrainOptionsInput,
    );
    process.stdout.write(JSON.stringify(summary) + '\n');
  });
  return cmd;
}
