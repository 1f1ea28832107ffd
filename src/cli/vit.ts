import { Command } from 'commander';
import { loadImageDataset } from '../data/image_dataset.js';
import { readPngFiles } from '../data/image_folder.js';
import type { ImageSet } from '../data/image_set.js';
import { UserError } from '../util/errors.js';
import { loadViT } from '../io/vit_dir.js';
import type { ViT } from '../models/vit.js';
import { parseViTTrainOptions, type ViTTrainOptions, type ViTTrainOptionsInput } from '../train/vit_options.js';
import { checkModelFits } from '../train/training_memory.js';
import { evaluateViT, evaluateViTAsync, predictViTAsync, trainViT, trainViTAsync, type ViTRun, type ViTStepInfo, type ViTTrainEvents, type ViTTrainSummary } from '../train/vit_trainer.js';
import { moveToBackend } from '../nn/placement.js';
import { useBackend, useBackendAsync, withBackendFlags } from './backend_flags.js';
import { int, num, seed } from './flags.js';
import { checkInDir, checkOutDir } from './out_dir.js';
import { trainedOptions } from './trained_options.js';

/** Flag table: [flag, options key, parser, help]. Defaults come from ViTTrainOptionsSchema. */
const HYPER: Array<[string, keyof ViTTrainOptionsInput, (v: string) => number, string]> = [
  ['--epochs <n>', 'epochs', int, 'passes over the training images (default 5)'],
  ['--max-steps <n>', 'maxSteps', int, 'stop after this many steps, even mid-epoch'],
  ['--batch-size <n>', 'batchSize', int, 'images per step (default 128)'],
  ['--lr <x>', 'lr', num, 'peak learning rate (default 2e-3)'],
  ['--min-lr <x>', 'minLr', num, 'learning rate at the end of the cosine decay (default 1e-5)'],
  ['--warmup-steps <n>', 'warmupSteps', int, 'linear warm-up steps (default 200)'],
  ['--weight-decay <x>', 'weightDecay', num, 'AdamW decoupled weight decay on matrices (default 0.05)'],
  ['--grad-clip <x>', 'gradClip', num, 'clip the global gradient norm; 0 disables (default 1.0)'],
  ['--patch <n>', 'patch', int, 'patch side in pixels; must divide the image sides (default 7)'],
  ['--d-model <n>', 'dModel', int, 'width of each patch\'s vector (default 64)'],
  ['--layers <n>', 'layers', int, 'encoder layers (default 4)'],
  ['--heads <n>', 'heads', int, 'attention heads; divide --d-model (default 4)'],
  ['--d-ff <n>', 'dFf', int, 'feed-forward width (default 2 × --d-model)'],
  ['--dropout <p>', 'dropout', num, 'dropout probability (default 0)'],
  ['--held-out <f>', 'heldOut', num, 'test fraction of a PNG folder without train/ and test/ (default 0.1)'],
  ['--log-interval <n>', 'logInterval', int, 'steps between progress lines (default 50)'],
  ['--seed <n>', 'seed', seed, 'random seed for initialisation and shuffling (default 1337)'],
];

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '?';
  const m = Math.floor(s / 60);
  const sec = Math.round(s % 60);
  return m > 0 ? `${m}m${String(sec).padStart(2, '0')}s` : `${sec}s`;
}

const stepLine = (s: ViTStepInfo): string =>
  `epoch ${s.epoch} step ${s.step}/${s.maxSteps} loss ${s.loss.toFixed(4)} acc ${(100 * s.accuracy).toFixed(1)}% ` +
  `lr ${s.lr.toExponential(2)} ${Math.round(s.imagesPerSecond)} img/s ETA ${formatSeconds(s.eta)}`;

/** Patch sides that divide an image of height × width (1 and the whole image left out: neither is a useful "word"). */
function patchSizes(height: number, width: number): number[] {
  const out: number[] = [];
  for (let p = 2; p < Math.min(height, width); p++) if (height % p === 0 && width % p === 0) out.push(p);
  return out.length ? out : [1];
}

export function runViTTraining(args: ViTTrainArgs, raw: ViTTrainOptionsInput, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): ViTTrainSummary {
  const { run, events } = vitRun(args, raw, log, useBackend(args).description);
  return trainViT(run, events);
}

/** runViTTraining on any backend, webgpu included (its device opened first). */
export async function runViTTrainingAsync(args: ViTTrainArgs, raw: ViTTrainOptionsInput, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<ViTTrainSummary> {
  const options = parseOptions(raw); // bad flags are reported before a device is opened
  const { description } = await useBackendAsync(args);
  const { run, events } = vitRun(args, options, log, description);
  return trainViTAsync(run, events);
}

export interface ViTTrainArgs {
  data: string;
  out: string;
  backend?: string;
  threads?: number;
}

/** The options, validated, and the model they size checked against this machine's memory. */
function parseOptions(raw: ViTTrainOptionsInput): ViTTrainOptions {
  let options: ViTTrainOptions;
  try {
    options = parseViTTrainOptions(raw);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  checkModelFits(options);
  return options;
}

/** The run (data loaded and checked) and the progress lines, whichever backend trains. */
function vitRun(args: ViTTrainArgs, raw: ViTTrainOptionsInput, log: (line: string) => void, description: string): { run: ViTRun; events: ViTTrainEvents } {
  const options = parseOptions(raw);
  checkOutDir(args.out, 'vit');
  checkInDir(args.data);
  const data = loadImageDataset(args.data, { heldOut: options.heldOut, seed: options.seed });
  const { train } = data;
  if (train.classes.length < 2) throw new UserError(`--data ${args.data}: found ${train.classes.length} class (${train.classes.join(', ')}); a classifier needs at least 2`);
  if (train.height % options.patch !== 0 || train.width % options.patch !== 0) {
    throw new UserError(`--patch ${options.patch} does not divide the ${train.width}×${train.height} images of ${args.data} (patch sizes that do: ${patchSizes(train.height, train.width).join(', ')})`);
  }
  return {
    run: { data, dataPath: args.data, options, out: args.out },
    events: {
      onStart: (i) => log(
        `training ViT: ${(i.params / 1e6).toFixed(3)}M parameters, ${i.config.image_width}×${i.config.image_height}×${i.config.channels} images → ` +
        `${i.config.image_height / i.config.patch_size}×${i.config.image_width / i.config.patch_size} patches of ${i.config.patch_size}×${i.config.patch_size}, ` +
        `${i.config.num_classes} classes; ${i.train} train / ${i.test} test images (${data.source}); ${i.maxSteps} steps; backend ${description}`,
      ),
      onStep: (s) => log(stepLine(s)),
      onEval: (e) => log(`epoch ${e.epoch} (step ${e.step}): test loss ${e.testLoss.toFixed(4)}, test accuracy ${(100 * e.testAccuracy).toFixed(2)}%`),
      onCheckpoint: (c) => log(`saved model at step ${c.step} to ${c.dir}`),
    },
  };
}

/** Relabel a set's classes into the model's class order, by name. */
function alignClasses(set: ImageSet, model: ViT, source: string): ImageSet {
  const names = model.config.labels;
  const map = set.classes.map((c) => names.indexOf(c));
  const missing = set.classes.find((_, i) => map[i] === -1);
  if (missing !== undefined) throw new UserError(`${source}: class "${missing}" is not one the model knows (${names.join(', ')})`);
  return { ...set, labels: Int32Array.from(set.labels, (l) => map[l]!), classes: names };
}

/**
 * The held-out fraction and seed the model was trained with (trainer.json),
 * so that a PNG folder without train/ and test/ is split the same way and
 * evaluation sees only images that training did not.
 */
function heldOutSplit(modelDir: string): { heldOut: number; seed: number } {
  const { heldOut, seed } = trainedOptions(modelDir, (raw) => parseViTTrainOptions(raw as ViTTrainOptionsInput));
  return { heldOut, seed };
}

/** The test images of `data` for the ViT in `modelDir` (the held-out split its training used), checked against its size and classes. */
export function vitTestSet(model: ViT, modelDir: string, data: string): ImageSet {
  const c = model.config;
  checkInDir(data);
  const { test } = loadImageDataset(data, heldOutSplit(modelDir));
  if (test.height !== c.image_height || test.width !== c.image_width || test.channels !== c.channels) {
    throw new UserError(`--data ${data}: images are ${test.width}×${test.height}×${test.channels} but the model takes ${c.image_width}×${c.image_height}×${c.channels}`);
  }
  return alignClasses(test, model, data);
}

export function runViTEval(o: { model: string; data: string; backend?: string; threads?: number }): { accuracy: number; loss: number; images: number } {
  useBackend(o);
  const model = loadViT(o.model);
  const test = vitTestSet(model, o.model, o.data);
  const r = evaluateViT(model, test);
  return { ...r, images: test.count };
}

/** runViTEval on any backend, webgpu included (the weights uploaded once). */
export async function runViTEvalAsync(o: { model: string; data: string; backend?: string; threads?: number }): Promise<{ accuracy: number; loss: number; images: number }> {
  await useBackendAsync(o);
  const model = loadViT(o.model);
  const test = vitTestSet(model, o.model, o.data);
  moveToBackend(model);
  const r = await evaluateViTAsync(model, test);
  return { ...r, images: test.count };
}

export function vitCommand(): Command {
  const vit = new Command('vit').description('Vision Transformer image classifier: train, evaluate, predict');

  const train = withBackendFlags(new Command('train'), { webgpu: true })
    .description('train a ViT on IDX files (MNIST, Fashion-MNIST) or PNG class folders')
    .requiredOption('--data <dir>', 'IDX files (train-*/t10k-*), or PNG folders: train/ and test/, or class subfolders')
    .option('--out <dir>', 'model directory, saved after every epoch', 'out-vit');
  for (const [flag, , parse, help] of HYPER) train.option(flag, help, parse);
  train.action(async (opts: Record<string, unknown>) => {
    const raw: Record<string, unknown> = {};
    for (const [, key] of HYPER) if (opts[key] !== undefined) raw[key] = opts[key];
    const summary = await runViTTrainingAsync(
      { data: opts.data as string, out: opts.out as string, backend: opts.backend as string, ...(opts.threads !== undefined ? { threads: opts.threads as number } : {}) },
      raw as ViTTrainOptionsInput,
    );
    process.stdout.write(JSON.stringify(summary) + '\n');
  });

  const evaluate = withBackendFlags(new Command('eval'), { webgpu: true })
    .description('test-set accuracy of a ViT model')
    .requiredOption('--model <dir>', 'ViT model directory (from attn vit train)')
    .requiredOption('--data <dir>', 'dataset directory, as for train (its test split is scored)')
    .action(async (o: { model: string; data: string; backend?: string; threads?: number }) => {
      process.stdout.write(JSON.stringify(await runViTEvalAsync(o)) + '\n');
    });

  const predict = withBackendFlags(new Command('predict'), { webgpu: true })
    .description('classify PNG images')
    .requiredOption('--model <dir>', 'ViT model directory (from attn vit train)')
    .argument('<images...>', 'PNG files of the model\'s image size')
    .action(async (images: string[], o: { model: string; backend?: string; threads?: number }) => {
      await useBackendAsync(o);
      const model = loadViT(o.model);
      const c = model.config;
      const set = readPngFiles(images, { height: c.image_height, width: c.image_width, channels: c.channels });
      moveToBackend(model);
      (await predictViTAsync(model, set)).forEach((p, i) => {
        process.stdout.write(`${images[i]}\t${c.labels[p.label]}\t${p.probabilities[p.label]!.toFixed(3)}\n`);
      });
    });

  for (const sub of [train, evaluate, predict]) vit.addCommand(sub.exitOverride().showHelpAfterError('(run with --help for usage)'));
  return vit;
}
