import { writeDirAtomic } from '../io/atomic.js';
import { pointTransformerFiles } from '../io/point_transformer_dir.js';
import { randomRotation, rotatePoints, type PointCloudDataset, type PointCloudSet } from '../data/point_clouds.js';
import { pointPatches, type PointPatches } from '../models/point_patches.js';
import { PointCloudTransformer } from '../models/point_transformer.js';
import { parsePointTransformerConfig, type PointTransformerConfig } from '../models/point_transformer_config.js';
import { AdamW } from '../optim/adamw.js';
import { noGrad } from '../tensor/autograd.js';
import { Tensor } from '../tensor/tensor.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { epochBatches } from './epoch_batches.js';
import { runTraining, type TrainingEvents } from './loop.js';
import type { PointCloudTrainOptions } from './point_cloud_options.js';
import type { Objective } from './step.js';
import { argmaxRows, classPredictions, countMatches } from './class_scores.js';
import { ProgressWindow } from './progress_window.js';

export interface PointCloudStepInfo {
  step: number;
  maxSteps: number;
  epoch: number;
  /** Mean loss and accuracy over the training batches since the last report. */
  loss: number;
  accuracy: number;
  lr: number;
  cloudsPerSecond: number;
  eta: number;
}

export interface PointCloudEvalInfo {
  epoch: number;
  step: number;
  testLoss: number;
  testAccuracy: number;
}

export type PointCloudTrainEvents = TrainingEvents<{ params: number; train: number; test: number; maxSteps: number; config: PointTransformerConfig }, PointCloudEvalInfo, PointCloudStepInfo>;

export interface PointCloudTrainSummary {
  epochs: number;
  steps: number;
  test_accuracy: number;
  test_loss: number;
  train_seconds: number;
  seconds: number;
  clouds_per_s: number;
}

/** Every cloud of a set cut into patch tokens once: farthest-point sampling and k-NN are the slow part of the data. */
export function tokenizeClouds(model: PointCloudTransformer, set: PointCloudSet): PointPatches[] {
  const { num_groups: G, group_size: K } = model.config;
  return set.clouds.map((c, i) => pointPatches(c, G, K, set.names[i]));
}

/**
 * The model's input tensors for the clouds at `indices`. With `rng`, each
 * cloud is turned by a fresh random rotation: turning the tokens is the same
 * as turning the cloud and re-tokenizing it, because farthest points and
 * nearest neighbours depend only on distances, which a rotation keeps.
 */
export function pointBatch(model: PointCloudTransformer, tokens: PointPatches[], indices: ArrayLike<number>, rng?: Rng): { patches: Tensor; centres: Tensor } {
  const { num_groups: G, group_size: K } = model.config;
  const n = indices.length;
  const patches = new Float32Array(n * G * K * 3);
  const centres = new Float32Array(n * G * 3);
  for (let i = 0; i < n; i++) {
    const t = tokens[indices[i]!]!;
    const p = patches.subarray(i * G * K * 3, (i + 1) * G * K * 3);
    const c = centres.subarray(i * G * 3, (i + 1) * G * 3);
    p.set(t.patches);
    c.set(t.centres);
    if (rng) {
      const m = randomRotation(rng);
      rotatePoints(p, m);
      rotatePoints(c, m);
    }
  }
  return { patches: new Tensor(patches, [n, G, K, 3]), centres: new Tensor(centres, [n, G, 3]) };
}

/** Accuracy and mean loss over tokenized clouds, in batches, without a graph. */
export function evaluatePointClouds(model: PointCloudTransformer, tokens: PointPatches[], labels: Int32Array, batchSize = 128): { accuracy: number; loss: number } {
  const wasTraining = model.training;
  model.eval();
  let right = 0;
  let lossSum = 0;
  noGrad(() => {
    for (let start = 0; start < tokens.length; start += batchSize) {
      const idx = Int32Array.from({ length: Math.min(batchSize, tokens.length - start) }, (_, i) => start + i);
      const y = labels.subarray(start, start + idx.length);
      const { patches, centres } = pointBatch(model, tokens, idx);
      const { logits, loss } = model.forward(patches, centres, y);
      lossSum += loss!.item() * idx.length;
      right += countMatches(argmaxRows(logits.data, model.config.num_classes), y);
    }
  });
  model.train(wasTraining);
  return { accuracy: right / tokens.length, loss: lossSum / tokens.length };
}

/** Class and softmax probabilities for each cloud. */
export function predictPointClouds(model: PointCloudTransformer, clouds: Float32Array[], names: string[]): Array<{ label: number; probabilities: number[] }> {
  const k = model.config.num_classes;
  const tokens = tokenizeClouds(model, { clouds, names, labels: new Int32Array(clouds.length), classes: model.config.labels });
  const { patches, centres } = pointBatch(model, tokens, Int32Array.from(clouds, (_, i) => i));
  const logits = noGrad(() => model.eval().forward(patches, centres).logits.data);
  return classPredictions(logits, k);
}

export function pointModelFor(classes: string[], o: PointCloudTrainOptions): PointCloudTransformer {
  const config = parsePointTransformerConfig({
    num_groups: o.groups, group_size: o.groupSize, point_hidden: o.pointHidden, d_model: o.dModel, n_layer: o.layers,
    n_head: o.heads, d_ff: o.dFf ?? 2 * o.dModel, dropout: o.dropout, num_classes: classes.length, labels: classes,
  }, 'point-cloud model');
  return new PointCloudTransformer(config, new Rng(o.seed));
}

/**
 * Train a point-cloud classifier: tokenize every cloud once, then shuffled
 * mini-batches each epoch (each cloud freshly rotated), cross-entropy,
 * AdamW with warm-up and cosine decay; after every epoch evaluate on the
 * test set and save the model atomically.
 */
export function trainPointClouds(run: { data: PointCloudDataset; dataName: string; options: PointCloudTrainOptions; out?: string }, events: PointCloudTrainEvents = {}): PointCloudTrainSummary {
  const t0 = performance.now();
  const o = run.options;
  const { train, test } = run.data;
  if (train.clouds.length === 0) throw new UserError('no training clouds');
  if (train.classes.length < 2) throw new UserError(`found ${train.classes.length} class (${train.classes.join(', ')}); a classifier needs at least 2`);
  const model = pointModelFor(train.classes, o);
  const trainTokens = tokenizeClouds(model, train);
  const testTokens = tokenizeClouds(model, test);
  const opt = new AdamW(model.namedParameters(), { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay });
  const stepsPerEpoch = Math.ceil(train.clouds.length / o.batchSize);
  const maxSteps = Math.min(o.epochs * stepsPerEpoch, o.maxSteps ?? Infinity);
  const schedule = { lr: o.lr, minLr: o.minLr, warmupIters: Math.min(o.warmupSteps, Math.floor(maxSteps / 5)), decayIters: maxSteps };
  const rng = new Rng(o.seed + 1);
  const epochOf = (step: number): number => Math.max(1, Math.ceil(step / stepsPerEpoch));
  events.onStart?.({ params: model.numParameters(), train: train.clouds.length, test: test.clouds.length, maxSteps, config: model.config });

  const batchAt = epochBatches(train.clouds.length, o.batchSize, rng);
  const nextBatches = (step: number): Int32Array[] => [batchAt(step)];
  const window = new ProgressWindow(o.logInterval, maxSteps);
  const objective: Objective<Int32Array> = {
    loss: (idx) => {
      const labels = Int32Array.from(idx, (i) => train.labels[i]!);
      const { patches, centres } = pointBatch(model, trainTokens, idx, o.rotate ? rng : undefined);
      const { logits, loss } = model.forward(patches, centres, labels);
      window.countRight(logits, labels, model.config.num_classes);
      return loss!;
    },
  };

  let last: PointCloudEvalInfo | null = null;
  const history: PointCloudEvalInfo[] = [];
  model.train();
  const result = runTraining({
    opt, objective, maxSteps, schedule, gradClip: o.gradClip, nextBatches,
    size: (b) => b.length,
    evalInterval: stepsPerEpoch,
    evaluate: (step) => {
      const r = evaluatePointClouds(model, testTokens, test.labels);
      last = { epoch: epochOf(step), step, testLoss: r.loss, testAccuracy: r.accuracy };
      history.push(last);
      events.onEval?.(last);
      return [r.loss];
    },
    checkpoint: run.out
      ? { dir: run.out, save: (step) => writeDirAtomic(run.out!, { ...pointTransformerFiles(model), 'trainer.json': JSON.stringify({ data: run.dataName, options: o, step, epoch: epochOf(step), history }, null, 2) + '\n' }) }
      : undefined,
    onCheckpoint: events.onCheckpoint,
    onStep: (p) => {
      if (window.add(p)) {
        const w = window.take();
        events.onStep?.({ step: p.step, maxSteps, epoch: epochOf(p.step), lr: p.lr, loss: w.loss, accuracy: w.accuracy, cloudsPerSecond: w.itemsPerSecond, eta: p.eta });
      }
    },
  });
  const final = last as PointCloudEvalInfo | null;
  return {
    epochs: final?.epoch ?? 0, steps: result.step, test_accuracy: final?.testAccuracy ?? NaN, test_loss: final?.testLoss ?? NaN,
    train_seconds: result.seconds, seconds: (performance.now() - t0) / 1000, clouds_per_s: result.items / Math.max(result.seconds, 1e-9),
  };
}
