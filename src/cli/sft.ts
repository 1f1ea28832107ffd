import { existsSync, readFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { Command } from 'commander';
import { parseChatRows } from '../data/instructions_file.js';
import { readTextFile } from '../io/read_text.js';
import type { LoopStep } from '../train/loop.js';
import { sft, sftAsync, SFT_STATE_FILE, type LoRASettings, type SftEvents, type SftRun, type SftState, type SftSummary } from '../train/sft.js';
import { loadDecoder, readTrainerState } from '../train/sft_checkpoint.js';
import { heldOutSplit, promptKey } from '../train/sft_data.js';
import { exactMatch } from '../train/sft_eval.js';
import { parseFineTuneOptions, type FineTuneOptionsInput } from '../train/sft_options.js';
import { UserError } from '../util/errors.js';
import { useBackendAsync, withBackendFlags } from './backend_flags.js';
import { moveToBackend } from '../nn/placement.js';
import { int, num, seed } from './flags.js';
import { startFineTuneRun, startFineTuneRunAsync } from './fine_tune_run.js';
import type { Progress } from './progress.js';

/** Flag table of the fine-tuning trainers (sft, reward train, dpo): [flag, options key, parser, help]. */
export const FINE_TUNE_FLAGS: Array<[string, keyof FineTuneOptionsInput, (v: string) => number, string]> = [
  ['--max-iters <n>', 'maxIters', int, 'optimizer steps (default 500)'],
  ['--batch-size <n>', 'batchSize', int, 'rows per micro-batch, grouped by length (default 8)'],
  ['--grad-accum <n>', 'gradAccum', int, 'micro-batches per optimizer step (default 1)'],
  ['--lr <x>', 'lr', num, 'peak learning rate (default 3e-4)'],
  ['--min-lr <x>', 'minLr', num, 'learning rate at the end of the cosine decay (default --lr / 10)'],
  ['--warmup-iters <n>', 'warmupIters', int, 'linear warm-up steps (default 20)'],
  ['--weight-decay <x>', 'weightDecay', num, 'AdamW decoupled weight decay (default 0)'],
  ['--grad-clip <x>', 'gradClip', num, 'clip the global gradient norm to this; 0 disables (default 1.0)'],
  ['--eval-interval <n>', 'evalInterval', int, 'evaluate and checkpoint every n steps (default 100)'],
  ['--log-interval <n>', 'logInterval', int, 'steps between progress lines when not on a terminal (default 10)'],
  ['--val-fraction <x>', 'valFraction', num, 'fraction of rows held out for evaluation (default 0.1)'],
  ['--seed <n>', 'seed', seed, 'random seed for the split, batches and adapters (default 1337)'],
];

export function withFineTuneFlags(cmd: Command): Command {
  for (const [flag, , parse, help] of FINE_TUNE_FLAGS) cmd.option(flag, help, parse);
  return cmd;
}

export function withLoRAFlags(cmd: Command): Command {
  return cmd
    .option('--lora-r <n>', 'train low-rank adapters of this rank instead of every weight (the base stays frozen)', int)
    .option('--lora-alpha <x>', 'LoRA scale: the update is multiplied by alpha / r (default 2·r)', num)
    .option('--lora-targets <names>', 'comma-separated Linear names to adapt (default: c_attn,c_fc for GPT; q_proj,v_proj for Llama)')
    .option('--lora-dropout <p>', 'dropout on the adapters\' input while training (default 0)', num);
}

/** The fine-tuning options given as flags. */
export function fineTuneOptionsFrom(opts: Record<string, unknown>) {
  const raw: Record<string, unknown> = {};
  for (const [, key] of FINE_TUNE_FLAGS) if (opts[key] !== undefined) raw[key] = opts[key];
  return parseFineTuneOptions(raw as FineTuneOptionsInput);
}

/** LoRA settings from the --lora-* flags, or undefined when --lora-r is not given. */
export function loraFrom(opts: Record<string, unknown>): LoRASettings | undefined {
  const given = ['loraAlpha', 'loraTargets', 'loraDropout'].filter((k) => opts[k] !== undefined);
  if (opts.loraR === undefined) {
    if (given.length) throw new UserError('--lora-alpha, --lora-targets and --lora-dropout need --lora-r');
    return undefined;
  }
  const r = opts.loraR as number;
  const targets = opts.loraTargets !== undefined ? String(opts.loraTargets).split(',').map((s) => s.trim()).filter(Boolean) : undefined;
  return { r, alpha: (opts.loraAlpha as number | undefined) ?? 2 * r, ...(targets ? { targets } : {}), dropout: (opts.loraDropout as number | undefined) ?? 0 };
}

/** A progress line for a fine-tuning step, with the trainer's own figures appended. */
export function stepInfo(p: LoopStep) {
  return { step: p.step, maxIters: p.maxSteps, loss: p.loss, lr: p.lr, gradNorm: p.gradNorm, tokensPerSecond: p.itemsPerSecond, eta: p.eta };
}

export interface SftCliArgs {
  init?: string;
  resume?: string;
  data: string;
  out: string;
  backend?: string;
  threads?: number;
  lora?: LoRASettings;
  quiet?: boolean;
  /** Plain text to rehearse beside the conversations (SftRun.rehearsal), cut into windows of `chars` characters. */
  rehearse?: { path: string; chars: number };
}

/** `attn sft`: the library call behind the command (also used by `attn align demo`). Host backends. */
export function runSft(a: SftCliArgs, options: ReturnType<typeof parseFineTuneOptions>): SftSummary {
  const r = startFineTuneRun(a, options.logInterval, parseChatRows);
  return sft(sftRun(a, options, r), sftEvents(a, r));
}

/** runSft on any backend, webgpu included. */
export async function runSftAsync(a: SftCliArgs, options: ReturnType<typeof parseFineTuneOptions>): Promise<SftSummary> {
  const r = await startFineTuneRunAsync(a, options.logInterval, parseChatRows);
  return sftAsync(sftRun(a, options, r), sftEvents(a, r));
}

// The paths are recorded absolute, so that --resume finds the files from any directory.
function sftRun(a: SftCliArgs, options: ReturnType<typeof parseFineTuneOptions>, r: { dataText: string; rows: ReturnType<typeof parseChatRows> }): SftRun {
  return { rows: r.rows, dataPath: resolve(a.data), dataText: r.dataText, options, out: a.out, ...(a.init ? { init: a.init } : {}), ...(a.resume ? { resume: a.resume } : {}), ...(a.lora ? { lora: a.lora } : {}),
    ...(a.rehearse ? { rehearsal: { path: resolve(a.rehearse.path), text: readTextFile(a.rehearse.path), chars: a.rehearse.chars } } : {}) };
}

/** A file a checkpoint's sft.json records, for a --resume that does not name it (as `attn train --resume` takes its data). */
function recordedFile(dir: string, path: unknown, what: string, flag: string): string {
  if (typeof path !== 'string') throw new UserError(`${join(dir, SFT_STATE_FILE)} does not record the ${what}; pass ${flag}`);
  if (!existsSync(path)) throw new UserError(`--resume ${dir}: the ${what} it was trained on, ${path}, is not there${isAbsolute(path) ? '' : ' (a path relative to where it was trained)'}; pass ${flag}`);
  return path;
}

/**
 * What `sft --resume` trains on: --data and --rehearse when given (a different
 * file is refused by the trainer), else the files the checkpoint records, the
 * rehearsal cut into the windows it was trained with.
 */
function resumeFiles(dir: string, opts: Record<string, unknown>, charsGiven: boolean): Pick<SftCliArgs, 'data' | 'rehearse'> {
  const state = readTrainerState<Partial<SftState>>(dir, SFT_STATE_FILE, 'attn sft');
  const data = (opts.data as string | undefined) ?? recordedFile(dir, state.data?.path, 'conversations file', '--data FILE.jsonl');
  const recorded = state.rehearsal;
  const chars = !charsGiven && recorded?.chars !== undefined ? recorded.chars : (opts.rehearseChars as number);
  if (opts.rehearse) return { data, rehearse: { path: opts.rehearse as string, chars } };
  return { data, ...(recorded ? { rehearse: { path: recordedFile(dir, recorded.path, 'rehearsal text', '--rehearse FILE'), chars } } : {}) };
}

function sftEvents(a: SftCliArgs, r: { description: string; progress: Progress; say(s: string): void }): SftEvents {
  const { description, progress, say } = r;
  return {
    onStart: (i) => {
      say(`${i.resumedFrom ? `resuming from step ${i.resumedFrom}` : 'fine-tuning'}: ${(i.params / 1e6).toFixed(2)}M parameters (${(i.trainable / 1e6).toFixed(3)}M trained), ${i.trainRows} train / ${i.valRows} held-out rows, backend ${description}`);
      if (i.added.length) say(`added to the vocabulary for the chat format: ${i.added.map((t) => JSON.stringify(t)).join(' ')}`);
      if (i.lora.length) say(`LoRA adapters on ${i.lora.length} layers (${i.lora.slice(0, 3).join(', ')}${i.lora.length > 3 ? ', …' : ''})`);
    },
    onStep: (p) => {
      if (!a.quiet) progress.step(stepInfo(p));
    },
    onEval: (e) => say(`val step ${e.step}: held-out loss ${e.valLoss.toFixed(4)} on assistant tokens`),
    onCheckpoint: (c) => say(`saved checkpoint at step ${c.step} to ${c.dir}`),
  };
}

/** The held-out rows of an `attn sft` run (as its sft.json records them), or the split the flags describe. */
function heldOutRows(model: string, rows: ReturnType<typeof parseChatRows>, all: boolean, valFraction: number, seed: number) {
  if (all) return rows;
  const statePath = join(model, SFT_STATE_FILE);
  if (existsSync(statePath)) {
    const state = JSON.parse(readFileSync(statePath, 'utf8')) as SftState;
    const held = new Set(state.heldOut);
    const picked = rows.filter((r) => held.has(r.row));
    if (picked.length) return picked;
  }
  return heldOutSplit(rows.length, valFraction, seed, rows.map((r) => promptKey(r.messages))).val.map((i) => rows[i]!);
}

export async function runSftEval(a: { model: string; data: string; all?: boolean; show?: number; valFraction?: number; seed?: number; backend?: string; threads?: number }): Promise<{ exact: number; rows: number }> {
  await useBackendAsync(a);
  const rows = parseChatRows(readTextFile(a.data), a.data);
  const { model, tokenizer } = loadDecoder(a.model, '--model');
  moveToBackend(model); // a device backend: the weights uploaded once (nothing on host backends)
  const picked = heldOutRows(a.model, rows, Boolean(a.all), a.valFraction ?? 0.1, a.seed ?? 1337);
  const { rate, checks } = await exactMatch(model, tokenizer, picked.map((r) => r.messages));
  for (const c of checks.slice(0, a.show ?? 0)) process.stderr.write(`${c.ok ? 'ok  ' : 'MISS'} ${JSON.stringify(c.reply)}${c.ok ? '' : ` (expected ${JSON.stringify(c.expected)})`}\n`);
  return { exact: rate, rows: checks.length };
}

export function sftCommand(): Command {
  const cmd = new Command('sft')
    .enablePositionalOptions()
    .description('supervised fine-tuning on conversations (JSONL rows {"messages": [...]} or {"prompt", "completion"}): loss on assistant tokens only; `attn sft eval` scores exact-match replies')
    .option('--init <dir>', 'the model to fine-tune (ours, Hugging Face GPT-2 or Llama-family)')
    .option('--data <file>', 'JSON Lines conversations (on --resume: the checkpoint\'s own unless given)')
    .option('--out <dir>', 'checkpoint directory', 'sft-out')
    .option('--resume <dir>', 'continue this checkpoint (writes back to it unless --out is given)')
    .option('--rehearse <file>', 'plain text learned beside the conversations, loss on every token (keeps what pretraining taught); on --resume: the checkpoint\'s own unless given')
    .option('--rehearse-chars <n>', 'characters per rehearsal window, cut at line ends', int, 96);
  withBackendFlags(cmd, { webgpu: true });
  withFineTuneFlags(cmd);
  withLoRAFlags(cmd);
  cmd.action(async (opts: Record<string, unknown>) => {
    if (!opts.data && !opts.resume) throw new UserError('sft needs --data FILE.jsonl (or --resume DIR)');
    if (!opts.init === !opts.resume) throw new UserError('sft needs --init DIR (a model to fine-tune) or --resume DIR (a checkpoint), not both');
    const options = fineTuneOptionsFrom(opts);
    const files: Pick<SftCliArgs, 'data' | 'rehearse'> = opts.resume
      ? resumeFiles(opts.resume as string, opts, cmd.getOptionValueSource('rehearseChars') === 'cli')
      : { data: opts.data as string, ...(opts.rehearse ? { rehearse: { path: opts.rehearse as string, chars: opts.rehearseChars as number } } : {}) };
    const lora = opts.resume ? undefined : loraFrom(opts);
    const out = cmd.getOptionValueSource('out') === 'cli' || !opts.resume ? (opts.out as string) : (opts.resume as string);
    const summary = await runSftAsync(
      {
        ...(opts.init ? { init: opts.init as string } : {}), ...(opts.resume ? { resume: opts.resume as string } : {}),
        ...files, out, backend: opts.backend as string, ...(opts.threads !== undefined ? { threads: opts.threads as number } : {}), ...(lora ? { lora } : {}),
      },
      options,
    );
    process.stdout.write(JSON.stringify(summary) + '\n');
  });
  const evaluate = withBackendFlags(new Command('eval'), { webgpu: true })
    .description('exact-match rate of greedy replies to the last assistant turn of held-out rows (those `attn sft` held out, recorded in the model\'s sft.json)')
    .requiredOption('--model <dir>', 'the fine-tuned model')
    .requiredOption('--data <file>', 'JSON Lines conversations')
    .option('--all', 'score every row, not only the held-out ones')
    .option('--show <n>', 'print the first n replies with their verdict to stderr', int, 0)
    .option('--val-fraction <x>', 'held-out fraction when the model has no sft.json (default 0.1)', num)
    .option('--seed <n>', 'split seed when the model has no sft.json (default 1337)', seed)
    .action(async (o: { model: string; data: string; all?: boolean; show: number; valFraction?: number; seed?: number; backend?: string; threads?: number }) => {
      const r = await runSftEval(o);
      process.stdout.write(JSON.stringify({ exact_match: r.exact, rows: r.rows }) + '\n');
    });
  cmd.addCommand(evaluate.exitOverride().showHelpAfterError('(run with --help for usage)'));
  return cmd;
}
