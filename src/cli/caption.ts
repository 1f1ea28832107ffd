import { existsSync, realpathSync } from 'node:fs';
import { Command } from 'commander';
import type { CaptionedImages } from '../data/fashion_captions.js';
import { readPngFiles } from '../data/image_folder.js';
import type { ImageSet } from '../data/image_set.js';
import type { CaptionScores } from '../eval/caption_scores.js';
import { captionAttention, captionAttentionAsync, writeCaptions, writeCaptionsAsync, type CaptionAttention } from '../generate/caption.js';
import { checkOutFile } from '../io/atomic.js';
import { writeAttentionHeatmap } from '../io/attention_heatmap_png.js';
import { loadCaptioner } from '../io/captioner_dir.js';
import type { Captioner } from '../models/captioner.js';
import { moveToBackend } from '../nn/placement.js';
import type { Tensor } from '../tensor/tensor.js';
import { parseCaptionTrainOptions, type CaptionTrainOptions, type CaptionTrainOptionsInput } from '../train/caption_options.js';
import { evaluateCaptioner, evaluateCaptionerAsync, loadCaptionData, trainCaptioner, trainCaptionerAsync, type CaptionRun, type CaptionTrainEvents, type CaptionTrainSummary } from '../train/caption_trainer.js';
import { imageBatch } from '../train/image_batch.js';
import { checkModelFits } from '../train/training_memory.js';
import { UserError } from '../util/errors.js';
import { useBackend, useBackendAsync, withBackendFlags } from './backend_flags.js';
import { int, natural, num, seed } from './flags.js';
import { checkInDir, checkOutDir } from './out_dir.js';
import { trainedOptions as trainerOptions } from './trained_options.js';

/** Where Debian's dataset-fashion-mnist package puts the IDX files. */
export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';

/** Flag table: [flag, options key, parser, help]. Defaults come from CaptionTrainOptionsSchema. */
const HYPER: Array<[string, keyof CaptionTrainOptionsInput, (v: string) => number, string]> = [
  ['--epochs <n>', 'epochs', int, 'passes over the training images (default 5)'],
  ['--max-steps <n>', 'maxSteps', int, 'stop after this many steps, even mid-epoch'],
  ['--batch-size <n>', 'batchSize', int, 'images per step (default 64)'],
  ['--lr <x>', 'lr', num, 'peak learning rate (default 2e-3)'],
  ['--min-lr <x>', 'minLr', num, 'learning rate at the end of the cosine decay (default 1e-5)'],
  ['--warmup-steps <n>', 'warmupSteps', int, 'linear warm-up steps (default 200)'],
  ['--weight-decay <x>', 'weightDecay', num, 'AdamW decoupled weight decay (default 0.05)'],
  ['--grad-clip <x>', 'gradClip', num, 'clip the global gradient norm; 0 disables (default 1.0)'],
  ['--patch <n>', 'patch', int, 'patch side in pixels; divides 28 and 42 (default 7)'],
  ['--d-model <n>', 'dModel', int, 'width of every vector, image and text (default 64)'],
  ['--layers <n>', 'layers', int, 'ViT encoder layers (default 4)'],
  ['--decoder-layers <n>', 'decoderLayers', int, 'text decoder layers (default 2)'],
  ['--heads <n>', 'heads', int, 'attention heads; divide --d-model (default 4)'],
  ['--d-ff <n>', 'dFf', int, 'feed-forward width (default 2 × --d-model)'],
  ['--dropout <p>', 'dropout', num, 'dropout probability (default 0)'],
  ['--class-loss-weight <x>', 'classLossWeight', num, 'weight of the ViT head\'s class loss beside the caption loss; 0 = captions only (default 0.5)'],
  ['--train-images <n>', 'trainImages', int, 'use the first N training images; 0 = all 60 000 (default 0)'],
  ['--test-images <n>', 'testImages', int, 'caption the first N test images after each epoch; 0 = all 10 000 (default 2000)'],
  ['--log-interval <n>', 'logInterval', int, 'steps between progress lines (default 50)'],
  ['--seed <n>', 'seed', seed, 'random seed for placement, initialisation and shuffling (default 1337)'],
];

export function runCaptionTraining(args: CaptionTrainArgs, raw: CaptionTrainOptionsInput, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): CaptionTrainSummary {
  const options = parseOptions(raw, args);
  const { run, events } = captionRun(args, options, log, useBackend(args).description);
  return trainCaptioner(run, events);
}

/** runCaptionTraining on any backend, webgpu included (its device opened first). */
export async function runCaptionTrainingAsync(args: CaptionTrainArgs, raw: CaptionTrainOptionsInput, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<CaptionTrainSummary> {
  const options = parseOptions(raw, args); // bad flags and folders are reported before a device is opened
  const { description } = await useBackendAsync(args);
  const { run, events } = captionRun(args, options, log, description);
  return trainCaptionerAsync(run, events);
}

export interface CaptionTrainArgs {
  data: string;
  out: string;
  backend?: string;
  threads?: number;
}

/** The options, validated, the model they size checked against this machine's memory, and the folders checked. */
function parseOptions(raw: CaptionTrainOptionsInput, args: CaptionTrainArgs): CaptionTrainOptions {
  let options: CaptionTrainOptions;
  try {
    options = parseCaptionTrainOptions(raw);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  checkModelFits(options);
  checkOutDir(args.out, 'image-captioner');
  checkCaptionData(args.data);
  return options;
}

/** The run (data loaded and checked) and the progress lines, whichever backend trains. */
function captionRun(args: CaptionTrainArgs, options: CaptionTrainOptions, log: (line: string) => void, description: string): { run: CaptionRun; events: CaptionTrainEvents } {
  const data = loadCaptionData(args.data, options);
  if (data.train.images.height % options.patch !== 0 || data.train.images.width % options.patch !== 0) {
    throw new UserError(`--patch ${options.patch} does not divide the ${data.train.images.width}×${data.train.images.height} canvas`);
  }
  const pct = (v: number): string => `${(100 * v).toFixed(1)}%`;
  return {
    run: { data, dataPath: args.data, options, out: args.out },
    events: {
      onStart: (i) => log(
        `training captioner: ${(i.params / 1e6).toFixed(3)}M parameters, ViT over ${i.config.image.image_width}×${i.config.image.image_height} canvases ` +
        `(${(i.config.image.image_width / i.config.image.patch_size) * (i.config.image.image_height / i.config.image.patch_size)} patches) + ${i.config.n_decoder_layers}-layer text decoder; ` +
        `${i.train} train / ${i.test} test images (${data.source}); ${i.maxSteps} steps; backend ${description}`,
      ),
      onStep: (s) => log(`epoch ${s.epoch} step ${s.step}/${s.maxSteps} loss ${s.loss.toFixed(4)} lr ${s.lr.toExponential(2)} ${Math.round(s.imagesPerSecond)} img/s ETA ${Math.round(s.eta)}s`),
      onEval: (e) => log(`epoch ${e.epoch} (step ${e.step}): class word ${pct(e.class_word_accuracy)}, properties ${pct(e.property_accuracy)}, BLEU-4 ${e.bleu4.toFixed(3)}`),
      onCheckpoint: (c) => log(`saved model at step ${c.step} to ${c.dir}`),
    },
  };
}

/** The options the model was trained with, so evaluation rebuilds the same test canvases and captions. */
export function trainedOptions(modelDir: string): CaptionTrainOptions {
  return trainerOptions(modelDir, (raw) => parseCaptionTrainOptions(raw as CaptionTrainOptionsInput));
}

/** --data must be a folder; the default one missing means Fashion-MNIST is not installed, so say how to get it. */
function checkCaptionData(dir: string): void {
  checkInDir(dir);
  if (dir === FASHION_MNIST_DIR && !existsSync(dir)) {
    throw new UserError(`Fashion-MNIST is not installed at ${dir} (Debian: apt-get install dataset-fashion-mnist); or give --data DIR with its IDX files`);
  }
}

type CaptionEvalResult = CaptionScores & { images: number; examples: Array<{ written: string; reference: string }> };
type CaptionEvalArgs = { model: string; data: string; testImages?: number; backend?: string; threads?: number };

export function runCaptionEval(o: CaptionEvalArgs, show = 0): CaptionEvalResult {
  useBackend(o);
  const { model, test } = evalSetup(o);
  return evalResult(evaluateCaptioner(model, test), test, show);
}

/** runCaptionEval on any backend: on a device the model's weights are uploaded once and each decoding step reads back its words. */
export async function runCaptionEvalAsync(o: CaptionEvalArgs, show = 0): Promise<CaptionEvalResult> {
  checkCaptionData(o.data); // a missing folder is reported before a device is opened
  await useBackendAsync(o);
  const { model, test } = evalSetup(o);
  moveToBackend(model);
  return evalResult(await evaluateCaptionerAsync(model, test), test, show);
}

/** The model and the test canvases and captions its training used (the first testImages of them). */
function evalSetup(o: CaptionEvalArgs): { model: Captioner; test: CaptionedImages } {
  checkCaptionData(o.data);
  const model = loadCaptioner(o.model);
  const options = trainedOptions(o.model);
  const { test } = loadCaptionData(o.data, { trainImages: 1, testImages: o.testImages ?? options.testImages, seed: options.seed });
  return { model, test };
}

function evalResult({ written, ...scores }: CaptionScores & { written: string[] }, test: CaptionedImages, show: number): CaptionEvalResult {
  return { ...scores, images: test.images.count, examples: written.slice(0, show).map((w, i) => ({ written: w, reference: test.captions[i]! })) };
}

type CaptionArgs = { model: string; heatmap?: string; backend?: string; threads?: number };
type Captioned = Array<{ image: string; caption: string; words?: string[] }>;

/** Caption PNG files; with a heatmap path, draw the cross-attention of the first image's caption word by word. */
export function runCaption(images: string[], o: CaptionArgs): Captioned {
  if (o.heatmap !== undefined) checkHeatmapPath(o.heatmap, images);
  useBackend(o);
  const c = captionSetup(images, o);
  const { ids, captions } = writeCaptions(c.model, c.batch());
  return captioned(c, images, captions, o.heatmap !== undefined ? captionAttention(c.model, c.first(), ids[0]!) : null, o.heatmap);
}

/** runCaption on any backend: on a device the weights are uploaded once; each word's pick and the heatmap's queries and keys are read back. */
export async function runCaptionAsync(images: string[], o: CaptionArgs): Promise<Captioned> {
  if (o.heatmap !== undefined) checkHeatmapPath(o.heatmap, images);
  await useBackendAsync(o);
  const c = captionSetup(images, o);
  moveToBackend(c.model);
  const { ids, captions } = await writeCaptionsAsync(c.model, c.batch());
  return captioned(c, images, captions, o.heatmap !== undefined ? await captionAttentionAsync(c.model, c.first(), ids[0]!) : null, o.heatmap);
}

/** The model and the PNGs read at its canvas size; the batches are made when asked (on a device: uploaded after the weights). */
function captionSetup(images: string[], o: CaptionArgs): { model: Captioner; set: ImageSet; batch(): Tensor; first(): Tensor } {
  const model = loadCaptioner(o.model);
  const c = model.config.image;
  const set = readPngFiles(images, { height: c.image_height, width: c.image_width, channels: c.channels }, { exactChannels: true });
  return { model, set, batch: () => imageBatch(model.encoder, set, Int32Array.from(images, (_, i) => i)), first: () => imageBatch(model.encoder, set, [0]) };
}

/** Each image with its caption; given the first caption's attention, its heatmap drawn and its words kept. */
function captioned(c: { model: Captioner; set: ImageSet }, images: string[], captions: string[], att: CaptionAttention | null, heatmap: string | undefined): Captioned {
  const out: Captioned = images.map((image, i) => ({ image, caption: captions[i]! }));
  if (att && heatmap !== undefined) {
    const im = c.model.config.image;
    const size = im.image_height * im.image_width;
    writeAttentionHeatmap(heatmap, { pixels: c.set.pixels.subarray(0, size), height: im.image_height, width: im.image_width, patch: im.patch_size }, att.patches);
    out[0]!.words = att.words;
  }
  return out;
}

/** --heatmap: a file name (an empty one is refused by checkOutFile, not taken as "no heatmap"), and not one of the images being captioned. */
function checkHeatmapPath(heatmap: string, images: readonly string[]): void {
  checkOutFile(heatmap, '--heatmap');
  if (!existsSync(heatmap)) return;
  const target = realpathSync(heatmap);
  const image = images.find((i) => existsSync(i) && realpathSync(i) === target);
  if (image !== undefined) throw new UserError(`--heatmap ${heatmap} is the image ${image} being captioned: writing it would replace the picture; give another file name`);
}

export function captionCommand(): Command {
  // Positional options: `--model` before a subcommand is the caption command's, after it the subcommand's own.
  const caption = withBackendFlags(new Command('caption'), { webgpu: true })
    .enablePositionalOptions()
    .description('image captioning (ViT encoder + text decoder with cross-attention) on Fashion-MNIST: train, eval, or caption PNG files')
    .usage('[options] IMAGE.png… | train | eval')
    .argument('[images...]', `PNG images of the model's canvas size (28 high × 42 wide, grayscale)`)
    .option('--model <dir>', 'captioning model directory (from attn caption train)')
    .option('--heatmap <out.png>', 'write the cross-attention of the first image\'s caption over its patches: one panel per word, left to right')
    .action(async (images: string[], o: { model?: string; heatmap?: string; backend?: string; threads?: number }) => {
      if (images.length === 0) throw new UserError('give PNG images to caption, or a subcommand: train, eval (see attn caption --help)');
      if (!o.model) throw new UserError('--model DIR is required to caption images (train one with `attn caption train`)');
      for (const r of await runCaptionAsync(images, { ...o, model: o.model })) {
        process.stdout.write(`${r.image}\t${r.caption}\n`);
        if (r.words) process.stderr.write(`heatmap ${o.heatmap}: one panel per word, left to right: ${r.words.join(' | ')}\n`);
      }
    });

  const train = withBackendFlags(new Command('train'), { webgpu: true })
    .description('train the captioner on Fashion-MNIST with captions written from each label and the properties measured on the picture')
    .option('--data <dir>', 'Fashion-MNIST IDX files (Debian: apt-get install dataset-fashion-mnist)', FASHION_MNIST_DIR)
    .option('--out <dir>', 'model directory, saved after every epoch', 'out-caption');
  for (const [flag, , parse, help] of HYPER) train.option(flag, help, parse);
  train.action(async (opts: Record<string, unknown>) => {
    const raw: Record<string, unknown> = {};
    for (const [, key] of HYPER) if (opts[key] !== undefined) raw[key] = opts[key];
    const summary = await runCaptionTrainingAsync({ data: opts.data as string, out: opts.out as string, backend: opts.backend as string, ...(opts.threads !== undefined ? { threads: opts.threads as number } : {}) }, raw as CaptionTrainOptionsInput);
    process.stdout.write(JSON.stringify(summary) + '\n');
  });

  const evaluate = withBackendFlags(new Command('eval'), { webgpu: true })
    .description('caption the test images and score the captions: class word, measured properties, BLEU-4')
    .requiredOption('--model <dir>', 'captioning model directory (from attn caption train)')
    .option('--data <dir>', 'Fashion-MNIST IDX files', FASHION_MNIST_DIR)
    .option('--test-images <n>', 'caption the first N test images; 0 = all 10 000 (default: as in training)', natural)
    .option('--show <n>', 'print the first N captions beside their references', natural, 5)
    .option('--json', 'end with one JSON line {"class_word_accuracy", "property_accuracy", "bleu4"}')
    .action(async (o: { model: string; data: string; testImages?: number; show: number; json?: boolean; backend?: string; threads?: number }) => {
      const r = await runCaptionEvalAsync(o, o.show);
      for (const e of r.examples) process.stdout.write(`${e.written}\t(reference: ${e.reference})\n`);
      process.stdout.write(`${r.images} test images: class word ${(100 * r.class_word_accuracy).toFixed(2)}%, properties ${(100 * r.property_accuracy).toFixed(2)}%, BLEU-4 ${r.bleu4.toFixed(4)}\n`);
      if (o.json) process.stdout.write(JSON.stringify({ class_word_accuracy: r.class_word_accuracy, property_accuracy: r.property_accuracy, bleu4: r.bleu4 }) + '\n');
    });

  for (const sub of [train, evaluate]) caption.addCommand(sub.exitOverride().showHelpAfterError('(run with --help for usage)'));
  return caption;
}
