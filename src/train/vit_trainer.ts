import { writeDirAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';
import { vitFiles } from '../io/vit_dir.js';
import type { ImageDataset } from '../data/image_dataset.js';
import { imageSize, type ImageSet } from '../data/image_set.js';
import { ViT } from '../models/vit.js';
import { vitConfigFor, type ViTConfig } from '../models/vit_config.js';
import { AdamW } from '../optim/adamw.js';
import { noGrad } from '../tensor/autograd.js';
import { Rng } from '../util/rng.js';
import { epochBatches } from './epoch_batches.js';
import { runTraining, type TrainingEvents } from './loop.js';
import type { Objective } from './step.js';
import type { ViTTrainOptions } from './vit_options.js';
import { imageBatch } from './image_batch.js';
import { ProgressWindow } from './progress_window.js';

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

/** Index of the largest score in each row of [rows, classes] logits. */
export function argmaxRows(logits: Float32Array, classes: number): Int32Array {
  const out = new Int32Array(logits.length / classes);
  for (let r = 0; r < out.length; r++) {
    let best = 0;
    for (let k = 1; k < classes; k++) if (logits[r * classes + k]! > logits[r * classes + best]!) best = k;
    out[r] = best;
  }
  return out;
}

const correct = (pred: Int32Array, labels: Int32Array): number => pred.reduce((n, p, i) => n + (p === labels[i] ? 1 : 0), 0);

/** Test-set accuracy and mean loss, in batches, without a graph. */
export function evaluateViT(model: ViT, set: ImageSet, batchSize = 500): { accuracy: number; loss: number } {
  const wasTraining = model.training;
  model.eval();
  let right = 0;
  let lossSum = 0;
  noGrad(() => {
    for (let start = 0; start < set.count; start += batchSize) {
      const idx = Int32Array.from({ length: Math.min(batchSize, set.count - start) }, (_, i) => start + i);
      const labels = set.labels.subarray(start, start + idx.length);
      const { logits, loss } = model.forward(imageBatch(model, set, idx), labels);
      lossSum += loss!.item() * idx.length;
      right += correct(argmaxRows(logits.data, model.config.num_classes), labels);
    }
  });
  model.train(wasTraining);
  return { accuracy: right / set.count, loss: lossSum / set.count };
}

/** Class predictions (and softmax probabilities) for every image of a set. */
export function predictViT(model: ViT, set: ImageSet): Array<{ label: number; probabilities: number[] }> {
  const k = model.config.num_classes;
  const logits = noGrad(() => model.eval().forward(imageBatch(model, set, Int32Array.from({ length: set.count }, (_, i) => i))).logits.data);
  return Array.from({ length: set.count }, (_, r) => {
    const row = logits.subarray(r * k, (r + 1) * k);
    const max = Math.max(...row);
    const e = Array.from(row, (v) => Math.exp(v - max));
    const z = e.reduce((a, b) => a + b, 0);
    return { label: argmaxRows(row, k)[0]!, probabilities: e.map((v) => v / z) };
  });
}

/**
 * Train a ViT classifier: shuffled mini-batches each epoch, cross-entropy,
 * gradient clipping, AdamW with warm-up and cosine decay over all steps.
 * After every epoch: evaluate on the test set and save the model atomically.
 */
export function trainViT(run: ViTRun, events: ViTTrainEvents = {}): ViTTrainSummary {
  const t0 = performance.now();
  const o = run.options;
  const { train, test } = run.data;
  if (imageSize(train) === 0 || train.count === 0) throw new UserError('no training images');
  const model = vitForData(train, o);
  const opt = new AdamW(model.namedParameters(), { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay });
  const stepsPerEpoch = Math.ceil(train.count / o.batchSize);
  const maxSteps = Math.min(o.epochs * stepsPerEpoch, o.maxSteps ?? Infinity);
  const schedule = { lr: o.lr, minLr: o.minLr, warmupIters: Math.min(o.warmupSteps, Math.floor(maxSteps / 5)), decayIters: maxSteps };
  const rng = new Rng(o.seed + 1);
  const epochOf = (step: number): number => Math.max(1, Math.ceil(step / stepsPerEpoch));
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
      window.right += correct(argmaxRows(logits.data, model.config.num_classes), labels);
      return loss!;
    },
  };

  let last: ViTEvalInfo | null = null;
  const history: ViTEvalInfo[] = [];
  let trainSeconds = 0;
  model.train();
  const result = runTraining({
    opt,
    objective,
    maxSteps,
    schedule,
    gradClip: o.gradClip,
    nextBatches,
    size: (b) => b.idx.length,
    evalInterval: stepsPerEpoch,
    evaluate: (step) => {
      const r = evaluateViT(model, test);
      last = { epoch: epochOf(step), step, testLoss: r.loss, testAccuracy: r.accuracy };
      history.push(last);
      events.onEval?.(last);
      return [r.loss];
    },
    checkpoint: run.out
      ? {
          dir: run.out,
          save: (step) => {
            const record = { data: run.dataPath, options: o, step, epoch: epochOf(step), history, train_seconds: trainSeconds };
            writeDirAtomic(run.out!, { ...vitFiles(model), 'trainer.json': JSON.stringify(record, null, 2) + '\n' });
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
  });
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
}

/** One step's images: their indices in the training set and their labels. */
interface ImageBatch {
  idx: Int32Array;
  labels: Int32Array;
}
