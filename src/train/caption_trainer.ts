import { captionFashion, type CaptionedImages } from '../data/fashion_captions.js';
import { loadImageDataset } from '../data/image_dataset.js';
import { subset, type ImageSet } from '../data/image_set.js';
import { scoreCaptions, type CaptionScores } from '../eval/caption_scores.js';
import { captionReads } from '../generate/caption.js';
import { writeDirAtomic } from '../io/atomic.js';
import { captionerFiles } from '../io/captioner_dir.js';
import type { Captioner } from '../models/captioner.js';
import type { CaptionerConfig } from '../models/captioner_config.js';
import { AdamW } from '../optim/adamw.js';
import { isHost } from '../backend/storage.js';
import { inEvalMode } from '../nn/eval_mode.js';
import { onHost } from '../nn/placement.js';
import { releaseStorage } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { CaptionTrainOptions } from './caption_options.js';
import { epochBatches, epochPlan } from './epoch_batches.js';
import { runTraining, runTrainingAsync, type LoopResult, type TrainingEvents, type TrainingLoop } from './loop.js';
import type { Objective } from './step.js';
import { imageBatch } from './image_batch.js';
import { captionerFor, captionTokens } from './caption_setup.js';
import { ProgressWindow } from './progress_window.js';

export interface CaptionData {
  train: CaptionedImages;
  test: CaptionedImages;
  source: string;
}

/**
 * Fashion-MNIST (IDX files in `dir`) as a captioning task: the first
 * trainImages / testImages of each split (0 = all), each placed on the wide
 * canvas and captioned from its label and measurements. The placement seeds
 * come from `seed`, so evaluation rebuilds exactly the test captions.
 */
export function loadCaptionData(dir: string, o: { trainImages: number; testImages: number; seed: number }): CaptionData {
  const d = loadImageDataset(dir);
  if (d.source !== 'IDX files') throw new UserError(`--data ${dir}: captioning reads Fashion-MNIST's IDX files (train-images-idx3-ubyte.gz, …), found ${d.source}`);
  const first = (s: ImageSet, n: number): ImageSet => (n > 0 && n < s.count ? subset(s, Int32Array.from({ length: n }, (_, i) => i)) : s);
  return {
    train: captionFashion(first(d.train, o.trainImages), o.seed),
    test: captionFashion(first(d.test, o.testImages), o.seed + 1),
    source: `${dir} (Fashion-MNIST IDX files)`,
  };
}

export interface CaptionStepInfo {
  step: number;
  maxSteps: number;
  epoch: number;
  loss: number;
  lr: number;
  imagesPerSecond: number;
  eta: number;
}

export interface CaptionEvalInfo extends CaptionScores {
  epoch: number;
  step: number;
}

export type CaptionTrainEvents = TrainingEvents<{ params: number; train: number; test: number; maxSteps: number; config: CaptionerConfig }, CaptionEvalInfo, CaptionStepInfo>;

export interface CaptionTrainSummary extends CaptionScores {
  epochs: number;
  steps: number;
  train_seconds: number;
  seconds: number;
  images_per_s: number;
}

/**
 * The test-set evaluation as a generator (tensor/value_reads.ts): each batch
 * of images is captioned greedily, the decoding yielding each step's picked
 * words to be read, so one loop serves the host (values at once) and a
 * device backend (read back, awaited). Then the captions are scored against
 * the references.
 */
function* evaluation(model: Captioner, data: CaptionedImages, batchSize: number): ValueReads<CaptionScores & { written: string[] }> {
  const written: string[] = [];
  for (let start = 0; start < data.images.count; start += batchSize) {
    const idx = Int32Array.from({ length: Math.min(batchSize, data.images.count - start) }, (_, i) => start + i);
    const images = imageBatch(model.encoder, data.images, idx);
    written.push(...(yield* captionReads(model, images)).captions);
    // A device's upload of the batch is spent once its patch vectors are made (a host batch stays the pool's business, as before).
    if (!isHost(images.storage)) releaseStorage(images.storage);
  }
  return { ...scoreCaptions(written, data.captions), written };
}

/** Write captions for every image of a set (greedy, in batches) and score them against the references (host backends). */
export function evaluateCaptioner(model: Captioner, data: CaptionedImages, batchSize = 250): CaptionScores & { written: string[] } {
  return inEvalMode(model, () => valuesNow(evaluation(model, data, batchSize)));
}

/** evaluateCaptioner on any backend: on a device each decoding step reads back only the words it picked. */
export function evaluateCaptionerAsync(model: Captioner, data: CaptionedImages, batchSize = 250): Promise<CaptionScores & { written: string[] }> {
  return inEvalMode(model, () => valuesAwaited(evaluation(model, data, batchSize)));
}

export interface CaptionRun {
  data: CaptionData;
  dataPath: string;
  options: CaptionTrainOptions;
  out?: string;
}

/**
 * Train the captioner: shuffled mini-batches each epoch, teacher-forced
 * caption cross-entropy (plus the ViT head's class loss), AdamW with warm-up
 * and cosine decay. After every epoch: write the test captions, score them,
 * save the model atomically. Host backends; trainCaptionerAsync trains on
 * any backend.
 */
export function trainCaptioner(run: CaptionRun, events: CaptionTrainEvents = {}): CaptionTrainSummary {
  const t = captionTrainingRun(run, events, false);
  return t.summary(runTraining(t.loop));
}

/**
 * trainCaptioner on any backend. On a device backend (webgpu) the weights
 * and the optimizer state stay on the device; the loss is read back every
 * log interval (and at evaluations), an evaluation reads the words each
 * decoding step picks, a checkpoint the weights once.
 */
export async function trainCaptionerAsync(run: CaptionRun, events: CaptionTrainEvents = {}): Promise<CaptionTrainSummary> {
  const t = captionTrainingRun(run, events, true);
  return t.summary(await runTrainingAsync(t.loop));
}

/** The loop of one run (for either driver), and how its result becomes the summary. */
function captionTrainingRun(run: CaptionRun, events: CaptionTrainEvents, async: boolean): { loop: TrainingLoop<Int32Array>; summary(result: LoopResult): CaptionTrainSummary } {
  const t0 = performance.now();
  const o = run.options;
  const { train, test } = run.data;
  const model = captionerFor(train.images, train.captions, o);
  const opt = new AdamW(model.namedParameters(), { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay });
  const n = train.images.count;
  const { stepsPerEpoch, maxSteps, schedule, epochOf } = epochPlan(n, o);
  const rng = new Rng(o.seed + 1);
  events.onStart?.({ params: model.numParameters(), train: n, test: test.images.count, maxSteps, config: model.config });

  const batchAt = epochBatches(n, o.batchSize, rng);
  const nextBatches = (step: number): Int32Array[] => [batchAt(step)];
  const objective: Objective<Int32Array> = {
    loss: (idx) => {
      const { tokensIn, targets } = captionTokens(model, train.captions, idx);
      const labels = Int32Array.from(idx, (i) => train.images.labels[i]!);
      return model.forward(imageBatch(model.encoder, train.images, idx), tokensIn, targets, { labels, classLossWeight: o.classLossWeight }).loss!;
    },
  };

  let last: CaptionEvalInfo | null = null;
  const history: CaptionEvalInfo[] = [];
  const window = new ProgressWindow(o.logInterval, maxSteps);
  model.train();
  const loop: TrainingLoop<Int32Array> = {
    opt, objective, maxSteps, schedule, gradClip: o.gradClip, nextBatches,
    size: (b) => b.length,
    evalInterval: stepsPerEpoch,
    readInterval: o.logInterval,
    evaluate: (step) => {
      const record = ({ written: _, ...scores }: CaptionScores & { written: string[] }): void => {
        last = { epoch: epochOf(step), step, ...scores };
        history.push(last);
        events.onEval?.(last);
      };
      return async ? evaluateCaptionerAsync(model, test).then(record) : record(evaluateCaptioner(model, test));
    },
    checkpoint: run.out
      ? {
          dir: run.out,
          save: (step) => {
            const write = () => writeDirAtomic(run.out!, { ...captionerFiles(model), 'trainer.json': JSON.stringify({ data: run.dataPath, options: o, step, epoch: epochOf(step), history }, null, 2) + '\n' });
            // On a device backend the weights are read back once, all together, for the save (on a host: at once).
            return onHost(model.parameters(), write);
          },
        }
      : undefined,
    onCheckpoint: events.onCheckpoint,
    onStep: (p) => {
      if (window.add(p)) {
        const w = window.take();
        events.onStep?.({ step: p.step, maxSteps, epoch: epochOf(p.step), lr: p.lr, loss: w.loss, imagesPerSecond: w.itemsPerSecond, eta: p.eta });
      }
    },
  };
  const summary = (result: LoopResult): CaptionTrainSummary => {
    const final = last as CaptionEvalInfo | null;
    return {
      epochs: final?.epoch ?? 0, steps: result.step,
      class_word_accuracy: final?.class_word_accuracy ?? NaN, property_accuracy: final?.property_accuracy ?? NaN, bleu4: final?.bleu4 ?? NaN,
      train_seconds: result.seconds, seconds: (performance.now() - t0) / 1000, images_per_s: result.items / Math.max(result.seconds, 1e-9),
    };
  };
  return { loop, summary };
}
