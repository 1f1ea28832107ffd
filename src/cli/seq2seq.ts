import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { numbersTask, pairsTask, type Seq2SeqTask, type TaskSource } from '../data/seq2seq_task.js';
import { parsePairsTSV } from '../data/translation_pairs.js';
import { crossAttentionMapAsync, meanOverHeads } from '../generate/cross_attention.js';
import { translateAsync } from '../generate/translate.js';
import { checkOutFile, writeFileAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';
import { loadSeq2Seq } from '../io/seq2seq_dir.js';
import { exactMatchAsync } from '../train/seq2seq_eval.js';
import { moveToBackend } from '../nn/placement.js';
import { parseSeq2SeqOptions, type Seq2SeqOptionsInput } from '../train/seq2seq_options.js';
import { trainSeq2SeqAsync, type Seq2SeqSummary } from '../train/seq2seq_trainer.js';
import { attentionHtml, attentionText } from './attention_view.js';
import { useBackendAsync, withBackendFlags } from './backend_flags.js';
import { int, nonNeg, num, posInt, seed } from './flags.js';
import { checkOutDir } from './out_dir.js';
import { Progress } from './progress.js';
import { readTextFile } from '../io/read_text.js';

/** Flag table: [flag, options key, parser, help]. Defaults come from Seq2SeqOptionsSchema. */
const HYPER: Array<[string, keyof Seq2SeqOptionsInput, (v: string) => number, string]> = [
  ['--steps <n>', 'steps', int, 'optimizer steps (default 1200)'],
  ['--batch-size <n>', 'batchSize', int, 'pairs per step (default 64)'],
  ['--lr <x>', 'lr', num, 'peak learning rate (default 1e-3)'],
  ['--min-lr <x>', 'minLr', num, 'learning rate at the end of the cosine decay (default 5e-5)'],
  ['--warmup <n>', 'warmup', int, 'linear warm-up steps (default 100)'],
  ['--layers <n>', 'layers', int, 'encoder layers and decoder layers, N of each (default 3)'],
  ['--d-model <n>', 'dModel', int, 'model width (default 128)'],
  ['--heads <n>', 'heads', int, 'attention heads; divide --d-model (default 4)'],
  ['--d-ff <n>', 'dFf', int, 'feed-forward width (default 512)'],
  ['--dropout <p>', 'dropout', num, 'dropout probability (default 0)'],
  ['--label-smoothing <e>', 'labelSmoothing', num, 'share of the target probability spread over the vocabulary (default 0.1)'],
  ['--weight-decay <x>', 'weightDecay', num, 'AdamW weight decay on 2-D weights (default 0.01)'],
  ['--grad-clip <x>', 'gradClip', num, 'clip the global gradient norm; 0 disables (default 1.0)'],
  ['--eval-interval <n>', 'evalInterval', int, 'translate the held-out pairs and checkpoint every n steps (default 400)'],
  ['--eval-size <n>', 'evalSize', int, 'held-out pairs translated at each evaluation (default 500)'],
  ['--log-interval <n>', 'logInterval', int, 'steps between progress lines when not on a terminal (default 25)'],
  ['--seed <n>', 'seed', seed, 'random seed for initialisation and batches (default 1337)'],
];

const NUMBERS_TASK = 'numbers-de';

/** The task to train or evaluate; a pairs file is remembered by its absolute path, so the model finds it from any directory. */
export function taskFrom(source: { task?: string; data?: string; reverse?: boolean }): Seq2SeqTask {
  if (source.task !== undefined && source.data !== undefined) throw new UserError('--task and --data exclude each other');
  if (source.data !== undefined) return pairsTask(parsePairsTSV(readTextFile(source.data), source.data), resolve(source.data), Boolean(source.reverse));
  if (source.task === NUMBERS_TASK) return numbersTask(Boolean(source.reverse));
  if (source.task === undefined) throw new UserError(`seq2seq train needs --task ${NUMBERS_TASK} or --data PAIRS.tsv`);
  throw new UserError(`unknown task "${source.task}" (available: ${NUMBERS_TASK})`);
}

const seconds = (t0: number): number => Math.round((performance.now() - t0) / 100) / 10;

function trainCommand(): Command {
  const cmd = new Command('train')
    .description('train an encoder–decoder Transformer on translation pairs (progress on stderr, JSON summary on stdout)')
    .addOption(new Option('--task <name>', 'built-in task: English → German number words').choices([NUMBERS_TASK]))
    .option('--data <file>', 'your own pairs: one "source<TAB>target" per line; 1 in 10 (by a hash of the source) held out')
    .option('--reverse', 'translate the other way (German → English for numbers-de)')
    .option('--out <dir>', 'checkpoint directory', 'seq2seq-out')
    .addOption(new Option('--norm <where>', 'LayerNorm after each residual add (the paper) or before each sublayer').choices(['post', 'pre']))
    .addOption(new Option('--activation <f>', 'feed-forward non-linearity').choices(['relu', 'gelu']))
    .addOption(new Option('--positions <kind>', 'position information (rope: rotary, in self-attention)').choices(['sinusoidal', 'learned', 'rope']))
    .option('--share-embeddings', 'one embedding table for source and target tokens');
  for (const [flag, , parse, help] of HYPER) cmd.option(flag, help, parse);
  withBackendFlags(cmd, { webgpu: true });
  cmd.action(async (opts: Record<string, unknown>) => {
    const t0 = performance.now();
    const summary = await runSeq2SeqTrain(opts);
    process.stdout.write(JSON.stringify({ ...summary, wall_seconds: seconds(t0) }) + '\n');
  });
  return cmd;
}

/** attn seq2seq train with the command's parsed flags, on any backend (webgpu included); progress on stderr. */
export async function runSeq2SeqTrain(opts: Record<string, unknown>): Promise<Seq2SeqSummary> {
  const raw: Record<string, unknown> = {};
  for (const [, key] of HYPER) if (opts[key] !== undefined) raw[key] = opts[key];
  for (const key of ['norm', 'activation', 'positions'] as const) if (opts[key] !== undefined) raw[key] = opts[key];
  if (opts.shareEmbeddings) raw.shareEmbeddings = true;
  const options = parseSeq2SeqOptions(raw as Seq2SeqOptionsInput);
  const task = taskFrom(opts as { task?: string; data?: string; reverse?: boolean });
  const out = opts.out as string;
  checkOutDir(out, 'transformer-seq2seq');
  const { description } = await useBackendAsync(opts as { backend?: string; threads?: number });
  const progress = new Progress(options.logInterval);
  return trainSeq2SeqAsync({ task, options, out }, {
    onStart: (i) => progress.line(`training: ${(i.params / 1e6).toFixed(2)}M parameters, vocab ${i.vocabSize}, ${i.steps} steps, backend ${description}`),
    onStep: (s) => progress.step(s),
    onEval: (e) => {
      if (e.total === 0) return progress.line(`eval step ${e.step}: no pair fell in the held-out split (1 in 10, by a hash of the source); exact match is not measured`);
      progress.line(`eval step ${e.step}: exact match ${(100 * e.accuracy).toFixed(1)}% (${e.correct}/${e.total} held-out)`);
      for (const m of e.misses.slice(0, 2)) progress.line(`  ${m.source} → ${m.got} (expected ${m.expected})`);
    },
    onCheckpoint: (c) => progress.line(`saved checkpoint at step ${c.step} to ${c.dir}`),
  });
}

/**
 * What seq2seq eval reads: the model's own task, or the pairs file given with
 * --data (only for a model trained on pairs: the built-in task has its own).
 */
function evalSource(dir: string, task: TaskSource, data: string | undefined): { task?: string; data?: string; reverse: boolean } {
  if (!('data' in task)) {
    if (data !== undefined) throw new UserError(`--data: ${dir} was trained on the built-in ${task.task} task, which has its own held-out pairs; leave out --data`);
    return task;
  }
  if (data !== undefined) return { data, reverse: task.reverse };
  if (!existsSync(task.data)) throw new UserError(`${dir} was trained on ${task.data}, which does not exist (any more); give the pairs file with --data FILE`);
  return task;
}

function evalCommand(): Command {
  const cmd = new Command('eval')
    .description('exact match of a translation model on its held-out pairs (JSON on stdout)')
    .requiredOption('--model <dir>', 'model directory from attn seq2seq train')
    .option('--limit <n>', 'held-out pairs to translate', int, 2000)
    .option('--beam <n>', 'beam width (1 = greedy)', int, 1)
    .option('--length-penalty <a>', 'α of the GNMT length penalty ((5+len)/6)^α, with --beam > 1', nonNeg, 0.6)
    .option('--data <file>', 'the pairs file, if it has moved since training');
  withBackendFlags(cmd, { webgpu: true });
  cmd.action(async (opts: { model: string; limit: number; beam: number; lengthPenalty: number; data?: string; backend?: string; threads?: number }) => {
    if (!(opts.limit >= 1)) throw new UserError(`--limit must be ≥ 1, got ${opts.limit}`);
    if (!(opts.beam >= 1)) throw new UserError(`--beam must be ≥ 1, got ${opts.beam}`);
    await useBackendAsync(opts);
    const { model, tokenizer, task } = loadSeq2Seq(opts.model);
    const t = taskFrom(evalSource(opts.model, task, opts.data));
    moveToBackend(model); // a device backend: the weights uploaded once (nothing on host backends)
    const t0 = performance.now();
    const r = await exactMatchAsync(model, tokenizer, t.heldOut(opts.limit), { beamWidth: opts.beam, lengthPenalty: opts.lengthPenalty });
    for (const m of r.misses) process.stderr.write(`miss: ${m.source} → ${m.got} (expected ${m.expected})\n`);
    if (r.total === 0) process.stderr.write('note: no pair fell in the held-out split (1 in 10, by a hash of the source); exact match is not measured\n');
    process.stdout.write(JSON.stringify({ exact_match: r.total ? r.accuracy : null, correct: r.correct, total: r.total, beam: opts.beam, seconds: seconds(t0) }) + '\n');
  });
  return cmd;
}

export function seq2seqCommand(): Command {
  return new Command('seq2seq')
    .description('encoder–decoder Transformers ("Attention Is All You Need"): train and evaluate translation models')
    .addCommand(trainCommand().exitOverride().showHelpAfterError('(run with --help for usage)'))
    .addCommand(evalCommand().exitOverride().showHelpAfterError('(run with --help for usage)'));
}

export function translateCommand(): Command {
  const cmd = new Command('translate')
    .description('translate texts with a model from attn seq2seq train, one line each on stdout')
    .argument('<text...>', 'texts to translate')
    .requiredOption('--model <dir>', 'model directory from attn seq2seq train')
    .option('--beam <n>', 'beam width (1 = greedy)', int, 4)
    .option('--length-penalty <a>', 'α of the GNMT length penalty ((5+len)/6)^α; 0 ranks by log-probability', nonNeg, 0.6)
    .option('--max-length <n>', 'most output tokens (default: the model\'s limit)', posInt)
    .option('--show-attention', 'print the cross-attention of the last decoder layer as a text heat map (source tokens as columns)')
    .option('--attention-heads', 'with --show-attention or --attention-html: one map per head instead of their mean')
    .option('--attention-html <file>', 'write the cross-attention heat maps as a standalone HTML page');
  withBackendFlags(cmd, { webgpu: true });
  cmd.action(async (texts: string[], opts: { model: string; beam: number; lengthPenalty: number; maxLength?: number; showAttention?: boolean; attentionHeads?: boolean; attentionHtml?: string; backend?: string; threads?: number }) => {
    if (opts.beam < 1) throw new UserError('--beam must be ≥ 1');
    if (opts.attentionHtml) checkOutFile(opts.attentionHtml, '--attention-html'); // before the translations are printed
    await useBackendAsync(opts);
    const { model, tokenizer } = loadSeq2Seq(opts.model);
    moveToBackend(model); // a device backend: the weights uploaded once (nothing on host backends)
    const results = await translateAsync(model, tokenizer, texts, { beamWidth: opts.beam, lengthPenalty: opts.lengthPenalty, ...(opts.maxLength ? { maxLength: opts.maxLength } : {}) });
    const pages: Parameters<typeof attentionHtml>[0] = [];
    for (const [i, r] of results.entries()) {
      process.stdout.write(r.text + (r.finished ? '' : '  [stopped at the length limit]') + '\n');
      if (!opts.showAttention && !opts.attentionHtml) continue;
      const map = await crossAttentionMapAsync(model, tokenizer, texts[i]!, r.ids);
      const matrices = opts.attentionHeads ? map.heads.map((m, h) => ({ label: `head ${h}`, matrix: m })) : [{ label: `mean of ${map.heads.length} heads`, matrix: meanOverHeads(map) }];
      if (opts.showAttention) {
        for (const { label, matrix } of matrices) process.stdout.write(`\ncross-attention, last layer, ${label}:\n${attentionText(matrix, map.sourceTokens, map.targetTokens)}\n\n`);
      }
      pages.push({ title: `${texts[i]} → ${r.text}`, map, matrices });
    }
    if (opts.attentionHtml) {
      writeFileAtomic(opts.attentionHtml, attentionHtml(pages));
      process.stderr.write(`wrote ${opts.attentionHtml}\n`);
    }
  });
  return cmd;
}
