import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { evaluateRecallAsync, reportDims } from '../eval/recall.js';
import { moveToBackend } from '../nn/placement.js';
import { loadEmbedder } from '../io/embedder_dir.js';
import { UserError } from '../util/errors.js';
import { checkDim, embedTextsAsync } from '../models/embed_texts.js';
import { distinctKeys } from '../data/positive_pairs.js';
import { parseEmbedderOptions, type EmbedderOptionsInput } from '../train/embedder_options.js';
import { trainEmbedder, trainEmbedderAsync, type EmbedderEvents, type EmbedderRun, type EmbedderSummary } from '../train/embedder_trainer.js';
import { useBackend, useBackendAsync, withBackendFlags } from './backend_flags.js';
import { describeSpec, FABLES, loadPairs, recordedSpec, type PairSpec } from './embed_pairs.js';
import { int, natural, num, posInt, rate, seed } from './flags.js';
import { checkOutDir } from './out_dir.js';
import { Progress } from './progress.js';

/** "32,64,128" → [32, 64, 128]. */
export function dimList(value: string): number[] {
  const dims = value.split(',').map((s) => s.trim());
  if (dims.some((d) => !/^\d+$/.test(d) || Number(d) < 1)) throw new InvalidArgumentError(`"${value}" is not a comma-separated list of positive integers.`);
  return dims.map(Number);
}

/**
 * --matryoshka: a prefix list, or "none" for plain full-dimension training.
 * (Commander turns a parser's null into "", so "none" stays a string until the options are built.)
 */
function prefixList(value: string): number[] | 'none' {
  return value.trim().toLowerCase() === 'none' ? 'none' : dimList(value);
}

/** Flag table: [flag, options key, parser, help]. Defaults come from EmbedderOptionsSchema. */
const HYPER: Array<[string, keyof EmbedderOptionsInput, (v: string) => unknown, string]> = [
  ['--layers <n>', 'layers', int, 'encoder layers (default 2)'],
  ['--d-model <n>', 'dModel', int, 'embedding width = the full embedding dimension (default 128)'],
  ['--heads <n>', 'heads', int, 'attention heads; divides --d-model (default 4)'],
  ['--max-len <n>', 'maxLen', int, 'longest input in tokens; longer texts are cut (default 64)'],
  ['--dropout <p>', 'dropout', num, 'dropout probability (default 0)'],
  ['--matryoshka <list>', 'matryoshka', prefixList, 'nested prefix sizes trained together, e.g. 16,32,64 (the full size is always added), or "none" for plain training (default: d/8, d/4, d/2)'],
  ['--temperature <t>', 'temperature', num, 'InfoNCE temperature (default 0.05)'],
  ['--batch-size <n>', 'batchSize', int, 'pairs per step; the others in a batch are the negatives (default 64)'],
  ['--steps <n>', 'steps', int, 'optimizer steps (default 1000)'],
  ['--lr <x>', 'lr', num, 'peak learning rate (default 1e-3)'],
  ['--min-lr <x>', 'minLr', num, 'learning rate at the end of the cosine decay (default: --lr / 10)'],
  ['--warmup-steps <n>', 'warmupSteps', int, 'linear warm-up steps (default 50)'],
  ['--weight-decay <x>', 'weightDecay', num, 'AdamW weight decay on 2-D weights (default 0.01)'],
  ['--grad-clip <x>', 'gradClip', num, 'clip the global gradient norm; 0 disables (default 1)'],
  ['--eval-interval <n>', 'evalInterval', int, 'measure held-out recall@1 and checkpoint every n steps (default 250)'],
  ['--eval-pairs <n>', 'evalPairs', int, 'held-out pairs ranked by recall@1 (default 500)'],
  ['--log-interval <n>', 'logInterval', int, 'steps between progress lines when not on a terminal (default 10)'],
  ['--seed <n>', 'seed', seed, 'random seed for initialisation and batches (default 1337)'],
  ['--vocab-size <n>', 'vocabSize', int, 'tokenizer vocabulary (word: cap, default 4096; bpe: target, default 512)'],
];

interface DataFlags {
  corpus?: string[];
  data?: string;
  task?: string;
  pairs?: number;
  dataSeed: number;
  passageWords: number;
  windowWords: number;
  keyBy?: 'passage' | 'document';
  multiFactRate?: number;
  keepRate?: number;
  multiKeepRate?: number;
  untitledRate?: number;
  titleRate?: number;
  samePassageRate?: number;
}

/** A --corpus share in [0, 1]: refused for other pair sources and outside the range. */
function corpusRate(flag: string, value: number | undefined, corpus: boolean): void {
  if (value === undefined) return;
  if (!corpus) throw new UserError(`${flag} applies to --corpus only`);
  if (!(value >= 0 && value <= 1)) throw new UserError(`${flag} must be between 0 and 1, not ${value}`);
}

function pairSpec(o: DataFlags): PairSpec {
  if ([o.data, o.task, o.corpus].filter((x) => x !== undefined).length > 1) throw new UserError('give one of --data FILE, --corpus FILES… or --task');
  if (o.keyBy !== undefined && !o.corpus) throw new UserError('--key-by applies to --corpus only');
  corpusRate('--multi-fact-rate', o.multiFactRate, !!o.corpus);
  corpusRate('--keep-rate', o.keepRate, !!o.corpus);
  corpusRate('--multi-keep-rate', o.multiKeepRate, !!o.corpus);
  corpusRate('--untitled-rate', o.untitledRate, !!o.corpus);
  corpusRate('--title-rate', o.titleRate, !!o.corpus);
  corpusRate('--same-passage-rate', o.samePassageRate, !!o.corpus);
  if (o.corpus) {
    return {
      task: 'corpus', files: o.corpus, pairs: o.pairs ?? 20_000, seed: o.dataSeed, passageWords: o.passageWords,
      ...(o.keyBy === 'document' ? { keyBy: 'document' as const } : {}),
      ...(o.multiFactRate ? { multiFactRate: o.multiFactRate } : {}),
      ...(o.keepRate !== undefined && o.keepRate !== 0.1 ? { keepRate: o.keepRate } : {}),
      ...(o.multiKeepRate ? { multiKeepRate: o.multiKeepRate } : {}),
      ...(o.untitledRate ? { untitledRate: o.untitledRate } : {}),
      ...(o.titleRate ? { titleRate: o.titleRate } : {}),
      ...(o.samePassageRate ? { samePassageRate: o.samePassageRate } : {}),
    };
  }
  const task = o.data ? 'passages' : (o.task ?? 'templates');
  if (task === 'templates') return { task, pairs: o.pairs ?? 20_000, seed: o.dataSeed };
  return { task: 'passages', file: o.data ?? FABLES, pairs: o.pairs ?? 20_000, seed: o.dataSeed, passageWords: o.passageWords, windowWords: o.windowWords };
}

function withDataFlags(cmd: Command): Command {
  return cmd
    .option('--data <file>', 'any UTF-8 text: two windows of the same passage are a positive pair')
    .option('--corpus <paths...>', 'your documents (files or directories, as `attn rag index` reads them): inverse cloze pairs, a sentence and the rest of its passage')
    .addOption(new Option('--task <name>', 'built-in pairs: paraphrase templates, or passages of the built-in fables').choices(['templates', 'fables']))
    .option('--pairs <n>', 'pairs to generate (default 20000); 10% of meanings/passages are held out', posInt)
    .option('--data-seed <n>', 'seed of the pair generator', natural, 1)
    .option('--passage-words <n>', 'words per passage (--data, --corpus, --task fables)', posInt, 64)
    .option('--window-words <n>', 'words per window; two windows per pair (--data, --task fables)', posInt, 24)
    .addOption(new Option('--key-by <what>', '--corpus: passage (another passage of the same document is a negative, as in the paper; a tenth of the documents held out) or document (it is not, and only a tenth of the sentences are held out: the recipe `attn rag demo` uses, docs/rag.md)').choices(['passage', 'document']))
    .option('--multi-fact-rate <r>', '--corpus: share of queries made of two sentences from two passages of one document (`attn rag demo` uses 0.5; docs/rag.md)', rate)
    .option('--keep-rate <r>', '--corpus: share of one-sentence pairs whose passage keeps the query sentence (default 0.1, as in the paper; `attn rag demo` uses 0.75)', rate)
    .option('--multi-keep-rate <r>', '--corpus: share of two-sentence pairs whose passage keeps the query\'s sentence from it (default 0; `attn rag demo` uses 0.75)', rate)
    .option('--untitled-rate <r>', '--corpus: share of two-sentence queries left without the document\'s title words (its `#` heading) but otherwise whole (default 0; `attn rag demo` uses 0.75; docs/rag.md)', rate)
    .option('--title-rate <r>', '--corpus: title-to-passage pairs added, as a share of --pairs: a document\'s `#` heading is the query, one of its passages the positive (default 0; `attn rag demo` uses 0.25; docs/rag.md)', rate)
    .option('--same-passage-rate <r>', '--corpus: share of two-sentence queries whose two sentences come from one passage, both kept in the positive (default 0; `attn rag demo` uses 0.75; docs/rag.md)', rate);
}

function recallTable(recall: Map<number, number>, full: number, pairs: number): string {
  const rows = [...recall].map(([d, r]) => `${d === full ? `${d} (full)` : d}\t${r.toFixed(3)}`);
  return `dim\trecall@1 (${pairs} held-out pairs, chance ${(1 / pairs).toFixed(3)})\n${rows.join('\n')}\n`;
}

type EmbedTrainResult = { recall: Map<number, number>; seconds: number; table: string };

/** attn embed train on a host backend (js, native). */
export function runEmbedTrain(opts: Record<string, unknown>, log: (s: string) => void = (s) => process.stderr.write(s)): EmbedTrainResult {
  const t = embedTraining(opts, log);
  return t.finish(trainEmbedder(t.run, t.events(useBackend(opts).description)));
}

/** runEmbedTrain on any backend, webgpu included (its device opened after the flags are checked). */
export async function runEmbedTrainAsync(opts: Record<string, unknown>, log: (s: string) => void = (s) => process.stderr.write(s)): Promise<EmbedTrainResult> {
  const t = embedTraining(opts, log);
  const { description } = await useBackendAsync(opts);
  return t.finish(await trainEmbedderAsync(t.run, t.events(description)));
}

/** The run the flags describe (options and pairs checked and loaded), its progress lines, and how its summary is reported. */
function embedTraining(opts: Record<string, unknown>, log: (s: string) => void): { run: EmbedderRun; events(backend: string): EmbedderEvents; finish(s: EmbedderSummary): EmbedTrainResult } {
  if (!opts.out) throw new UserError('embed train needs --out DIR');
  const raw: Record<string, unknown> = {};
  for (const [, key] of HYPER) if (opts[key] !== undefined) raw[key] = opts[key];
  if (raw.matryoshka === 'none') raw.matryoshka = null;
  if (opts.tokenizer) raw.tokenizer = opts.tokenizer;
  if (opts.pooling) raw.pooling = opts.pooling;
  if (opts.symmetric === false) raw.symmetric = false;
  if (opts.spaceTokens === false) raw.spaceTokens = false;
  if (opts.lowercase === true) raw.lowercase = true;
  let options;
  try {
    options = parseEmbedderOptions(raw as EmbedderOptionsInput);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  const spec = pairSpec(opts as unknown as DataFlags);
  const out = String(opts.out);
  checkOutDir(out, 'embedder');
  const { train, heldOut } = loadPairs(spec);
  const progress = new Progress(options.logInterval, process.stderr);
  return {
    run: { train, heldOut, pairs: recordedSpec(spec), options, out },
    events: (description) => ({
      onStart: (i) => progress.line(`training embedder: ${(i.params / 1e6).toFixed(2)}M parameters, vocab ${i.vocabSize}, ${i.trainPairs} train pairs / ${i.evalPairs} held out (${describeSpec(spec)}), prefixes ${i.dims.join(',')}, backend ${description}`),
      onStep: (s) => progress.step(s),
      onEval: (e) => progress.line(`eval step ${e.step}: loss ${e.loss.toFixed(4)}, recall@1 ${[...e.recall].map(([d, r]) => `${d}:${r.toFixed(3)}`).join(' ')}`),
      onCheckpoint: (c) => progress.line(`saved ${c.dir} at step ${c.step}`),
    }),
    finish: (summary) => {
      log(`trained ${summary.step} steps in ${summary.seconds.toFixed(1)} s\n`);
      return { recall: summary.recall, seconds: summary.seconds, table: recallTable(summary.recall, summary.model.config.d_model, distinctKeys(heldOut, options.evalPairs).length) };
    },
  };
}

interface TrainingRecord {
  pairs: PairSpec;
  evalPairs?: number;
}

/** How a model was trained (its pairs, its held-out size), from its training.json. */
function trainingRecord(dir: string): TrainingRecord {
  try {
    const record = JSON.parse(readFileSync(join(dir, 'training.json'), 'utf8')) as { pairs?: PairSpec; options?: { evalPairs?: number } };
    if (record.pairs && typeof record.pairs === 'object') return { pairs: record.pairs, evalPairs: record.options?.evalPairs };
  } catch {
    // handled below
  }
  throw new UserError(`${dir}/training.json does not record the training pairs; pass --data FILE or --task templates`);
}

/** The files a model's pairs were made from, refused with the flags that give them again when they are gone (the held-out split is rebuilt from them). */
function checkRecordedFiles(dir: string, spec: PairSpec): void {
  const where = join(dir, 'training.json');
  if (spec.task === 'passages' && spec.file !== FABLES && !existsSync(spec.file)) {
    throw new UserError(`${where}: the training text ${spec.file} is not there; pass it as --data FILE --pairs ${spec.pairs} --data-seed ${spec.seed} --passage-words ${spec.passageWords} --window-words ${spec.windowWords}`);
  }
  const gone = spec.task === 'corpus' ? spec.files.filter((f) => !existsSync(f)) : [];
  if (gone.length) throw new UserError(`${where}: the training documents ${gone.join(', ')} are not there; pass them as --corpus PATHS… with the flags the model was trained with (its "pairs")`);
}

/** attn embed eval on any backend, webgpu included (the weights uploaded once, only vectors read back). */
export async function runEmbedEval(opts: Record<string, unknown>): Promise<string> {
  await useBackendAsync(opts);
  const dir = String(opts.model);
  const { model, tokenizer } = loadEmbedder(dir);
  const given = Boolean(opts.data || opts.task || opts.corpus);
  const record = given ? null : trainingRecord(dir);
  if (record) checkRecordedFiles(dir, record.pairs);
  const spec = record?.pairs ?? pairSpec(opts as unknown as DataFlags);
  const full = model.config.d_model;
  const dims = (opts.dims as number[] | undefined) ?? reportDims(full, model.config.matryoshka_dims);
  for (const d of dims) checkDim(model, d);
  const pairs = distinctKeys(loadPairs(spec).heldOut, (opts.evalPairs as number | undefined) ?? record?.evalPairs ?? 500);
  moveToBackend(model); // a device backend: the weights uploaded once (nothing on host backends)
  return recallTable(await evaluateRecallAsync(model, tokenizer, pairs, dims), full, pairs.length);
}

const sig = (x: number): number => Number(x.toPrecision(7));

/** attn embed text on any backend, webgpu included. */
export async function runEmbedText(texts: string[], opts: { model: string; dim?: number; format?: string; backend?: string; threads?: number }): Promise<string> {
  if (texts.length === 0) throw new UserError('give at least one TEXT to embed');
  await useBackendAsync(opts);
  const { model, tokenizer } = loadEmbedder(opts.model);
  const dim = opts.dim ?? model.config.d_model;
  if (opts.dim !== undefined) {
    try {
      checkDim(model, dim);
    } catch (e) {
      throw new UserError(`--dim ${opts.dim}: ${(e as Error).message}`);
    }
  }
  moveToBackend(model);
  const vectors = await embedTextsAsync(model, tokenizer, texts, dim);
  if (opts.format === 'tsv') return texts.map((t, i) => `${t.replace(/[\t\r\n]+/g, ' ')}\t${Array.from(vectors[i]!, sig).join('\t')}\n`).join('');
  return texts.map((t, i) => JSON.stringify({ text: t, dim, embedding: Array.from(vectors[i]!, sig) }) + '\n').join('');
}

const finish = (c: Command): Command => c.exitOverride().showHelpAfterError('(run with --help for usage)');

/**
 * `attn embed`: `train`, `eval`, and `text` — the default, so
 * `attn embed --model DIR "some text"` embeds without naming it.
 */
export function embedCommand(): Command {
  const cmd = new Command('embed')
    .description('sentence embeddings: train an encoder with Matryoshka contrastive loss, evaluate recall@1, embed texts')
    .addHelpText('after', '\n`text` is the default: `attn embed --model DIR [--dim N] TEXT…` is `attn embed text --model DIR [--dim N] TEXT…`.\nSee docs/embedder.md.');

  const train = withBackendFlags(withDataFlags(new Command('train')), { webgpu: true })
    .description('train an embedder on generated paraphrase pairs (default) or passage windows of a text; prints held-out recall@1 per prefix')
    .requiredOption('--out <dir>', 'model directory to write (config.json, model.safetensors, tokenizer.json, training.json)')
    .addOption(new Option('--positions <kind>', 'position encoding (default learned)').choices(['learned', 'sinusoidal', 'rope']))
    .addOption(new Option('--tokenizer <kind>', 'tokens (default word)').choices(['char', 'word', 'bpe']))
    .addOption(new Option('--pooling <how>', 'sentence vector: mean of the token vectors (default) or idf: weighted by each token\'s inverse document frequency in the training text (docs/embedder.md)').choices(['mean', 'idf']))
    .option('--no-symmetric', 'score anchors → positives only (default: both directions)')
    .option('--lowercase', 'word tokenizer: fold text to lower case, learned and encoded alike (recorded in tokenizer.json; `attn rag demo` trains so; docs/rag.md)')
    .option('--no-space-tokens', 'word tokenizer: no tokens for white space, so a --max-len window holds about twice the words (`attn rag demo` trains so; docs/rag.md)');
  for (const [flag, , parse, help] of HYPER) train.option(flag, help, parse as (v: string, p: unknown) => unknown);
  train.action(async (opts: Record<string, unknown>) => {
    const { table } = await runEmbedTrainAsync(opts);
    process.stdout.write(table);
  });

  const evaluate = withBackendFlags(withDataFlags(new Command('eval')), { webgpu: true })
    .description('held-out recall@1 of an embedder at each prefix dimension (the pairs it was trained with unless --data/--task)')
    .requiredOption('--model <dir>', 'embedder directory')
    .option('--dims <list>', 'prefix dimensions to score (default: the trained prefixes and halvings of the full size)', dimList)
    .option('--eval-pairs <n>', 'held-out pairs to rank (default: as in training, else 500)', int)
    .action(async (opts: Record<string, unknown>) => {
      process.stdout.write(await runEmbedEval(opts));
    });

  const text = withBackendFlags(new Command('text'), { webgpu: true })
    .description('print unit-length embeddings of TEXT… (JSON lines; or --format tsv)')
    .argument('[text...]', 'texts to embed')
    .requiredOption('--model <dir>', 'embedder directory')
    .option('--dim <n>', 'use the first N components, re-normalised (a Matryoshka prefix; default: all)', int)
    .addOption(new Option('--format <kind>', 'output format').choices(['jsonl', 'tsv']).default('jsonl'))
    .action(async (texts: string[], opts: { model: string; dim?: number; format?: string; backend?: string; threads?: number }) => {
      process.stdout.write(await runEmbedText(texts, opts));
    });

  cmd.addCommand(finish(train));
  cmd.addCommand(finish(evaluate));
  cmd.addCommand(finish(text), { isDefault: true });
  return cmd;
}
