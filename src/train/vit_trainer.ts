import { writeDirAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';
import { vitFiles } from '../io/vit_dir.js';
import type { ImageDataset } from '../data/image_dataset.js';
import { imageSize, type ImageSet } from '../data/image_set.js';
import { ViT } from '../models/vit.js';
import { vitConfigFor, type ViTConfig } from '../models/vit_config.js';
import { AdamW } from '../optim/adamw.js';
import { inEvalMode } from '../nn/eval_mode.js';
import { onHost } from '../nn/placement.js';
import { noGrad } from '../tensor/autograd.js';
import { withDeviceScratch } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';
import { Rng } from '../util/rng.js';
import { epochBatches, epochPlan } from './epoch_batches.js';
import { runTraining, runTrainingAsync, type LoopResult, type TrainingEvents, type TrainingLoop } from './loop.js';
import type { Objective } from './step.js';
import type { ViTTrainOptions } from './vit_options.js';
import { imageBatch } from './image_batch.js';
import { ProgressWindow } from './progress_window.js';
import { argmaxRows, classPredictions, countMatches } from './class_scores.js';

export interface ViTStepInfo {
  step: number;
  maxSteps: number;
  epoch: number;
  /** Mean loss and accuracy over the training batches since the last report. */
  loss: number;
  accuracy: number;
  lr: number;
  imagesPerSecond: number;
  /** Seconds left at the current pace (training steps only). */
  eta: number;
}

export interface ViTEvalInfo {
  epoch: number;
  step: number;
  testLoss: number;
  testAccuracy: number;
}

export type ViTTrainEvents = TrainingEvents<{ params: number; train: number; test: number; maxSteps: number; config: ViTConfig }, ViTEvalInfo, ViTStepInfo>;

export interface ViTTrainSummary {
  epochs: number;
  steps: number;
  test_accuracy: number;
  test_loss: number;
  /** Wall time of the training steps, and of the whole run including evaluation and saving. */
  train_seconds: number;
  seconds: number;
  images_per_s: number;
}

export interface ViTRun {
  data: ImageDataset;
  dataPath: string;
  options: ViTTrainOptions;
  out?: string;
}

/** A fresh ViT sized by the options, for images shaped like `train`, standardising with its statistics. */
export function vitForData(train: ImageSet, o: ViTTrainOptions): ViT {
  return new ViT(vitConfigFor(train, o), new Rng(o.seed));
}

/**
 * Test-set evaluation as a generator (tensor/value_reads.ts): it yields each
 * batch's [loss, logits] tensors and is handed back their values, so one
 * loop serves the host (values at once) and a device backend (read back,
 * awaited).
 */
function* evaluation(model: ViT, set: ImageSet, batchSize: number): ValueReads<{ accuracy: number; loss: number }> {
  let right = 0;
  let lossSum = 0;
  for (let start = 0; start < set.count; start += batchSize) {
    const idx = Int32Array.from({ length: Math.min(batchSize, set.count - start) }, (_, i) => start + i);
    const labels = set.labels.subarray(start, start + idx.length);
    // On a device the pass is scratch (the uploaded batch included): everything but the loss and the scores goes back to the pool at once.
    const { logits, loss } = withDeviceScratch(() => noGrad(() => model.forward(imageBatch(model, set, idx), labels)), (o) => [o.logits.storage, o.loss!.storage]);
    const [lossValue, logitValues] = yield [loss!, logits];
    lossSum += lossValue![0]! * idx.length;
    right += countMatches(argmaxRows(logitValues!, model.config.num_classes), labels);
  }
  return { accuracy: right / set.count, loss: lossSum / set.count };
}

/** Test-set accuracy and mean loss, in batches, without a graph (host backends). */
export function evaluateViT(model: ViT, set: ImageSet, batchSize = 500): { accuracy: number; loss: number } {
  return inEvalMode(model, () => valuesNow(evaluation(model, set, batchSize)));
}

/** evaluateViT on any backend: a device backend's batches are read back as they finish. */
export function evaluateViTAsync(model: ViT, set: ImageSet, batchSize = 500): Promise<{ accuracy: number; loss: number }> {
  return inEvalMode(model, () => valuesAwaited(evaluation(model, set, batchSize)));
}

/** Class predictions (and softmax probabilities) for every image of a set (host backends). */
export function predictViT(model: ViT, set: ImageSet): Array<{ label: number; probabilities: number[] }> {
  return inEvalMode(model, () => valuesNow(prediction(model, set)));
}

/** predictViT on any backend: on a device the scores are read back once. */
export function predictViTAsync(model: ViT, set: ImageSet): Promise<Array<{ label: number; probabilities: number[] }>> {
  return inEvalMode(model, () => valuesAwaited(prediction(model, set)));
}

/** Every image scored in one pass (scratch on a device), the scores yielded to be read, then each image's class and probabilities. */
function* prediction(model: ViT, set: ImageSet): ValueReads<Array<{ label: number; probabilities: number[] }>> {
  const all = Int32Array.from({ length: set.count }, (_, i) => i);
  const logits = withDeviceScratch(() => noGrad(() => model.forward(imageBatch(model, set, all)).logits), (l) => [l.storage]);
  const [values] = yield [logits];
  return classPredictions(values!, model.config.num_classes);
}

/**
 * Train a ViT classifier: shuffled mini-batches each epoch, cross-entropy,
 * gradient clipping, AdamW with warm-up and cosine decay over all steps.
 * After every epoch: evaluate on the test set and save the model atomically.
 * Host backends; trainViTAsync trains on any backend.
 */
export function trainViT(run: ViTRun, events: ViTTrainEvents = {}): ViTTrainSummary {
  const t = vitTrainingRun(run, events, false);
  return t.summary(runTraining(t.loop));
}

/**
 * trainViT on any backend. On a device backend (webgpu) the weights and the
 * optimizer state stay on the device; the loss is read back every log
 * interval, the predictions of each step as they finish (for the progress
 * line's accuracy), an evaluation reads its losses and logits, a checkpoint
 * the weights once.
 */
export async function trainViTAsync(run: ViTRun, events: ViTTrainEvents = {}): Promise<ViTTrainSummary> {
  const t = vitTrainingRun(run, events, true);
  return t.summary(await runTrainingAsync(t.loop));
}

/** The loop of one run (for either driver), and how its result becomes the summary. */
function vitTrainingRun(run: ViTRun, events: ViTTrainEvents, async: boolean): { loop: TrainingLoop<ImageBatch>; summary(result: LoopResult): ViTTrainSummary } {
  const t0 = performance.now();
  const o = run.options;
  const { train, test } = run.data;
  if (imageSize(train) === 0 || train.count === 0) throw new UserError('no training images');
  const model = vitForData(train, o);
  const opt = new AdamW(model.namedParameters(), { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay });
  const { stepsPerEpoch, maxSteps, schedule, epochOf } = epochPlan(train.count, o);
  const rng = new Rng(o.seed + 1);
  events.onStart?.({ params: model.numParameters(), train: train.count, test: test.count, maxSteps, config: model.config });

  // The data source: a fresh shuffle at the start of each epoch, then consecutive slices of it.
  const batchAt = epochBatches(train.count, o.batchSize, rng);
  const nextBatches = (step: number): ImageBatch[] => {
    const idx = batchAt(step);
    return [{ idx, labels: Int32Array.from(idx, (i) => train.labels[i]!) }];
  };
  // Cross-entropy of the class scores; counting the right answers on the way for the progress line.
  const window = new ProgressWindow(o.logInterval, maxSteps);
  const objective: Objective<ImageBatch> = {
    loss: ({ idx, labels }) => {
      const { logits, loss } = model.forward(imageBatch(model, train, idx), labels);
      window.countRight(logits, labels, model.config.num_classes);
      return loss!;
    },
  };

  let last: ViTEvalInfo | null = null;
  const history: ViTEvalInfo[] = [];
  let trainSeconds = 0;
  model.train();
  const loop: TrainingLoop<ImageBatch> = {
    opt,
    objective,
    maxSteps,
    schedule,
    gradClip: o.gradClip,
    nextBatches,
    size: (b) => b.idx.length,
    evalInterval: stepsPerEpoch,
    readInterval: o.logInterval,
    evaluate: (step) => {
      const record = (r: { accuracy: number; loss: number }): number[] => {
        last = { epoch: epochOf(step), step, testLoss: r.loss, testAccuracy: r.accuracy };
        history.push(last);
        events.onEval?.(last);
        return [r.loss];
      };
      return async ? evaluateViTAsync(model, test).then(record) : record(evaluateViT(model, test));
    },
    checkpoint: run.out
      ? {
          dir: run.out,
          save: (step) => {
            const record = { data: run.dataPath, options: o, step, epoch: epochOf(step), history, train_seconds: trainSeconds };
            const write = () => writeDirAtomic(run.out!, { ...vitFiles(model), 'trainer.json': JSON.stringify(record, null, 2) + '\n' });
            // On a device backend the weights are read back once, all together, for the save (on a host: at once).
            return onHost(model.parameters(), write);
          },
        }
      : undefined,
    onCheckpoint: events.onCheckpoint,
    onStep: (p) => {
      trainSeconds += p.seconds;
      if (window.add(p)) {
        const w = window.take();
        events.onStep?.({ step: p.step, maxSteps, epoch: epochOf(p.step), lr: p.lr, loss: w.loss, accuracy: w.accuracy, imagesPerSecond: w.itemsPerSecond, eta: p.eta });
      }
    },
  };
  const summary = (result: LoopResult): ViTTrainSummary => {
    const final = last as ViTEvalInfo | null;
    return {
      epochs: final?.epoch ?? 0,
      steps: result.step,
      test_accuracy: final?.testAccuracy ?? NaN,
      test_loss: final?.testLoss ?? NaN,
      train_seconds: result.seconds,
      seconds: (performance.now() - t0) / 1000,
      images_per_s: result.items / Math.max(result.seconds, 1e-9),
    };
  };
  return { loop, summary };
}

/** One step's images: their indices in the training set and their labels. */
interface ImageBatch {
  idx: Int32Array;
  labels: Int32Array;
}
