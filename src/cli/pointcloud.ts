import { Command } from 'commander';
import { loadPointCloudFolder, readPointFile } from '../data/point_cloud_files.js';
import { SHAPES, shapesDataset, type PointCloudDataset, type PointCloudSet } from '../data/point_clouds.js';
import { loadPointTransformer } from '../io/point_transformer_dir.js';
import type { PointPatches } from '../models/point_patches.js';
import type { PointCloudTransformer } from '../models/point_transformer.js';
import { moveToBackend } from '../nn/placement.js';
import { parsePointCloudTrainOptions, type PointCloudTrainOptions, type PointCloudTrainOptionsInput } from '../train/point_cloud_options.js';
import {
  evaluatePointClouds, evaluatePointCloudsAsync, predictPointCloudsAsync, tokenizeClouds, trainPointClouds, trainPointCloudsAsync,
  type PointCloudRun, type PointCloudTrainEvents, type PointCloudTrainSummary,
} from '../train/point_cloud_trainer.js';
import { checkFitsInMemory, checkModelFits } from '../train/training_memory.js';
import { UserError } from '../util/errors.js';
import { useBackend, useBackendAsync, withBackendFlags } from './backend_flags.js';
import { int, num, seed } from './flags.js';
import { checkInDir, checkOutDir } from './out_dir.js';
import { trainedOptions as trainerOptions } from './trained_options.js';

/** Flag table: [flag, options key, parser, help]. Defaults come from PointCloudTrainOptionsSchema. */
const HYPER: Array<[string, keyof PointCloudTrainOptionsInput, (v: string) => number, string]> = [
  ['--epochs <n>', 'epochs', int, 'passes over the training clouds (default 8)'],
  ['--max-steps <n>', 'maxSteps', int, 'stop after this many steps, even mid-epoch'],
  ['--batch-size <n>', 'batchSize', int, 'clouds per step (default 32)'],
  ['--lr <x>', 'lr', num, 'peak learning rate (default 1e-3)'],
  ['--min-lr <x>', 'minLr', num, 'learning rate at the end of the cosine decay (default 1e-5)'],
  ['--warmup-steps <n>', 'warmupSteps', int, 'linear warm-up steps (default 100)'],
  ['--weight-decay <x>', 'weightDecay', num, 'AdamW decoupled weight decay (default 0.05)'],
  ['--grad-clip <x>', 'gradClip', num, 'clip the global gradient norm; 0 disables (default 1.0)'],
  ['--groups <n>', 'groups', int, 'patch tokens per cloud, picked by farthest-point sampling (default 32)'],
  ['--group-size <n>', 'groupSize', int, 'points per patch: each centre\'s nearest neighbours (default 16)'],
  ['--point-hidden <n>', 'pointHidden', int, 'hidden width of the per-point mini-PointNet (default 64)'],
  ['--d-model <n>', 'dModel', int, 'width of each token\'s vector (default 64)'],
  ['--layers <n>', 'layers', int, 'encoder layers (default 4)'],
  ['--heads <n>', 'heads', int, 'attention heads; divide --d-model (default 4)'],
  ['--d-ff <n>', 'dFf', int, 'feed-forward width (default 2 × --d-model)'],
  ['--dropout <p>', 'dropout', num, 'dropout probability (default 0)'],
  ['--train-per-class <n>', 'trainPerClass', int, '--task shapes: training clouds per shape (default 400)'],
  ['--test-per-class <n>', 'testPerClass', int, '--task shapes: test clouds per shape (default 100)'],
  ['--held-out <f>', 'heldOut', num, 'test fraction of a folder without train/ and test/ (default 0.2)'],
  ['--log-interval <n>', 'logInterval', int, 'steps between progress lines (default 20)'],
  ['--seed <n>', 'seed', seed, 'random seed for data, initialisation and shuffling (default 1337)'],
];

const TASKS = ['shapes'];

/** The data a command names: the generated task or a folder of point files (exactly one of the two). */
export function pointData(o: { task?: string; data?: string }, options: PointCloudTrainOptions): PointCloudDataset {
  if (o.task !== undefined && o.data !== undefined) throw new UserError('give --task or --data, not both');
  if (o.data !== undefined) {
    checkInDir(o.data);
    return loadPointCloudFolder(o.data, { heldOut: options.heldOut, seed: options.seed });
  }
  if (o.task === undefined) throw new UserError(`give --task (${TASKS.join(', ')}) or --data DIR (one subfolder of .xyz/.off/.ply files per class)`);
  if (!TASKS.includes(o.task)) throw new UserError(`--task ${o.task} is not a point-cloud task (known: ${TASKS.join(', ')})`);
  checkFitsInMemory(shapesBytes(options), `--train-per-class ${options.trainPerClass}, --test-per-class ${options.testPerClass}: generating the clouds`);
  return shapesDataset(options.trainPerClass, options.testPerClass, options.seed);
}

/**
 * Memory the generated task can take: every cloud (at most 1 024 points of
 * x, y, z) and its patch tokens, in float32. Checked before generating, which
 * for a huge --train-per-class would otherwise run for hours and then fail.
 */
function shapesBytes(o: PointCloudTrainOptions): number {
  const clouds = SHAPES.length * (o.trainPerClass + o.testPerClass);
  return clouds * 3 * 4 * (1024 + o.groups * (o.groupSize + 1)); // 1 024: shapeCloud's most points
}

export interface PointCloudTrainArgs {
  task?: string;
  data?: string;
  out: string;
  backend?: string;
  threads?: number;
}

export function runPointCloudTraining(args: PointCloudTrainArgs, raw: PointCloudTrainOptionsInput, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): PointCloudTrainSummary {
  const options = parseOptions(raw);
  checkOutDir(args.out, 'point-cloud-transformer');
  const { run, events } = pointCloudRun(args, options, log, useBackend(args).description);
  return trainPointClouds(run, events);
}

/** runPointCloudTraining on any backend, webgpu included (its device opened first). */
export async function runPointCloudTrainingAsync(args: PointCloudTrainArgs, raw: PointCloudTrainOptionsInput, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<PointCloudTrainSummary> {
  const options = parseOptions(raw); // bad flags and a bad --out are reported before a device is opened
  checkOutDir(args.out, 'point-cloud-transformer');
  const { description } = await useBackendAsync(args);
  const { run, events } = pointCloudRun(args, options, log, description);
  return trainPointCloudsAsync(run, events);
}

/** The options, validated, and the model they size checked against this machine's memory. */
function parseOptions(raw: PointCloudTrainOptionsInput): PointCloudTrainOptions {
  let options: PointCloudTrainOptions;
  try {
    options = parsePointCloudTrainOptions(raw);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  checkModelFits(options);
  return options;
}

/** The run (data generated or loaded) and the progress lines, whichever backend trains. */
function pointCloudRun(args: PointCloudTrainArgs, options: PointCloudTrainOptions, log: (line: string) => void, description: string): { run: PointCloudRun; events: PointCloudTrainEvents } {
  const data = pointData(args, options);
  return {
    run: { data, dataName: args.data ?? `task:${args.task}`, options, out: args.out },
    events: {
      onStart: (i) => log(
        `training point-cloud transformer: ${(i.params / 1e6).toFixed(3)}M parameters, ${i.config.num_groups} patches of ${i.config.group_size} points, ` +
        `${i.config.num_classes} classes; ${i.train} train / ${i.test} test clouds (${data.source}); ${i.maxSteps} steps; backend ${description}`,
      ),
      onStep: (s) => log(`epoch ${s.epoch} step ${s.step}/${s.maxSteps} loss ${s.loss.toFixed(4)} acc ${(100 * s.accuracy).toFixed(1)}% lr ${s.lr.toExponential(2)} ${Math.round(s.cloudsPerSecond)} clouds/s ETA ${Math.round(s.eta)}s`),
      onEval: (e) => log(`epoch ${e.epoch} (step ${e.step}): test loss ${e.testLoss.toFixed(4)}, test accuracy ${(100 * e.testAccuracy).toFixed(2)}%`),
      onCheckpoint: (c) => log(`saved model at step ${c.step} to ${c.dir}`),
    },
  };
}

/** The options the model was trained with (trainer.json), so evaluation regenerates or splits the same test set. */
export function trainedOptions(modelDir: string): PointCloudTrainOptions {
  return trainerOptions(modelDir, (raw) => parsePointCloudTrainOptions(raw as PointCloudTrainOptionsInput));
}

/** Relabel a set's classes into the model's order, by name. */
export function alignClasses(set: PointCloudSet, model: PointCloudTransformer, source: string): PointCloudSet {
  const names = model.config.labels;
  const map = set.classes.map((c) => names.indexOf(c));
  const missing = set.classes.find((_, i) => map[i] === -1);
  if (missing !== undefined) throw new UserError(`${source}: class "${missing}" is not one the model knows (${names.join(', ')})`);
  return { ...set, labels: Int32Array.from(set.labels, (l) => map[l]!), classes: names };
}

export interface PointCloudEvalArgs {
  model: string;
  task?: string;
  data?: string;
  backend?: string;
  threads?: number;
}

export function runPointCloudEval(o: PointCloudEvalArgs): { accuracy: number; loss: number; examples: number } {
  useBackend(o);
  const { model, tokens, labels } = evalSet(o);
  return { ...evaluatePointClouds(model, tokens, labels), examples: labels.length };
}

/** runPointCloudEval on any backend: on a device the model is uploaded once, after loading. */
export async function runPointCloudEvalAsync(o: PointCloudEvalArgs): Promise<{ accuracy: number; loss: number; examples: number }> {
  await useBackendAsync(o);
  const { model, tokens, labels } = evalSet(o);
  moveToBackend(model);
  return { ...(await evaluatePointCloudsAsync(model, tokens, labels)), examples: labels.length };
}

/** The model and its test set (the split its training scored), tokenized, labels in the model's class order. */
function evalSet(o: PointCloudEvalArgs): { model: PointCloudTransformer; tokens: PointPatches[]; labels: Int32Array } {
  const model = loadPointTransformer(o.model);
  const { test } = pointData(o, trainedOptions(o.model));
  const aligned = alignClasses(test, model, o.data ?? `--task ${o.task}`);
  return { model, tokens: tokenizeClouds(model, aligned), labels: aligned.labels };
}

export function pointcloudCommand(): Command {
  const pc = new Command('pointcloud').description('point-cloud transformer (patch tokens by farthest-point sampling + k-NN): train, evaluate, predict');

  const train = withBackendFlags(new Command('train'), { webgpu: true })
    .description('train a point-cloud classifier on generated shapes (--task shapes) or a folder of point files')
    .option('--task <name>', `generated data set: ${TASKS.join(', ')} (sphere, cube, cylinder, cone, torus, pyramid; noisy, turned at random)`)
    .option('--data <dir>', 'folder of .xyz/.off/.ply files, one subfolder per class (or train/ and test/ folders of those)')
    .option('--out <dir>', 'model directory, saved after every epoch', 'out-pointcloud');
  for (const [flag, , parse, help] of HYPER) train.option(flag, help, parse);
  train.option('--no-rotate', 'do not turn the training clouds by a fresh random rotation each epoch');
  train.action(async (opts: Record<string, unknown>) => {
    const raw: Record<string, unknown> = { rotate: opts.rotate !== false };
    for (const [, key] of HYPER) if (opts[key] !== undefined) raw[key] = opts[key];
    const summary = await runPointCloudTrainingAsync(
      { task: opts.task as string | undefined, data: opts.data as string | undefined, out: opts.out as string, backend: opts.backend as string, ...(opts.threads !== undefined ? { threads: opts.threads as number } : {}) },
      raw as PointCloudTrainOptionsInput,
    );
    process.stdout.write(JSON.stringify(summary) + '\n');
  });

  const evaluate = withBackendFlags(new Command('eval'), { webgpu: true })
    .description('test-set accuracy of a point-cloud model (the generated test set is regenerated from the training seed)')
    .requiredOption('--model <dir>', 'model directory (from attn pointcloud train)')
    .option('--task <name>', `generated data set: ${TASKS.join(', ')}`)
    .option('--data <dir>', 'point-file folder, as for train (its test split is scored)')
    .option('--json', 'end with one JSON line {"accuracy": …, "examples": …}')
    .action(async (o: PointCloudEvalArgs & { json?: boolean }) => {
      const r = await runPointCloudEvalAsync(o);
      process.stdout.write(`test accuracy ${(100 * r.accuracy).toFixed(2)}% on ${r.examples} clouds (mean loss ${r.loss.toFixed(4)})\n`);
      if (o.json) process.stdout.write(JSON.stringify({ accuracy: r.accuracy, examples: r.examples }) + '\n');
    });

  const predict = withBackendFlags(new Command('predict'), { webgpu: true })
    .description('classify point files (.xyz, .off, .ply): one line per file, "file<TAB>class<TAB>probability"')
    .requiredOption('--model <dir>', 'model directory (from attn pointcloud train)')
    .argument('<files...>', 'point files')
    .action(async (files: string[], o: { model: string; backend?: string; threads?: number }) => {
      await useBackendAsync(o);
      const model = loadPointTransformer(o.model);
      moveToBackend(model); // on a device backend: the weights uploaded once
      const clouds = files.map((f) => readPointFile(f));
      const t0 = performance.now();
      const out = await predictPointCloudsAsync(model, clouds, files);
      const ms = performance.now() - t0;
      out.forEach((p, i) => process.stdout.write(`${files[i]}\t${model.config.labels[p.label]}\t${p.probabilities[p.label]!.toFixed(3)}\n`));
      process.stderr.write(`classified ${files.length} cloud${files.length === 1 ? '' : 's'} in ${ms.toFixed(1)} ms (tokenizing included)\n`);
    });

  for (const sub of [train, evaluate, predict]) pc.addCommand(sub.exitOverride().showHelpAfterError('(run with --help for usage)'));
  return pc;
}
