import { writeDirAtomic } from '../io/atomic.js';
import { pointTransformerFiles } from '../io/point_transformer_dir.js';
import { randomRotation, rotatePoints, type PointCloudDataset, type PointCloudSet } from '../data/point_clouds.js';
import { pointPatches, type PointPatches } from '../models/point_patches.js';
import { PointCloudTransformer, type PointCloudOutput } from '../models/point_transformer.js';
import { parsePointTransformerConfig, type PointTransformerConfig } from '../models/point_transformer_config.js';
import { AdamW } from '../optim/adamw.js';
import { inEvalMode } from '../nn/eval_mode.js';
import { onHost } from '../nn/placement.js';
import { noGrad } from '../tensor/autograd.js';
import { Tensor, uploadForPass, withDeviceScratch } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { epochBatches, epochPlan } from './epoch_batches.js';
import { runTraining, runTrainingAsync, type LoopResult, type TrainingEvents, type TrainingLoop } from './loop.js';
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
 * On a device the upload is the pass's (uploadForPass): it goes back to the
 * pool with the inference pass's scratch, or after a training micro-batch's
 * backward.
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
  return { patches: new Tensor(uploadForPass(patches), [n, G, K, 3]), centres: new Tensor(uploadForPass(centres), [n, G, 3]) };
}

/**
 * The class scores of the clouds at `indices` (and their mean loss, given
 * labels), without a graph. On a device the pass is scratch: everything but
 * the logits and the loss goes back to the pool at once.
 */
function scoreBatch(model: PointCloudTransformer, tokens: PointPatches[], indices: ArrayLike<number>, labels?: Int32Array): PointCloudOutput {
  return withDeviceScratch(() => {
    const batch = pointBatch(model, tokens, indices);
    return noGrad(() => model.forward(batch.patches, batch.centres, labels));
  }, (o) => [o.logits.storage, ...(o.loss ? [o.loss.storage] : [])]);
}

/**
 * Evaluation over tokenized clouds as a generator (tensor/value_reads.ts):
 * it yields each batch's [loss, logits] and is handed back their values, so
 * one loop serves the host (values at once) and a device (read back, awaited).
 */
function* evaluation(model: PointCloudTransformer, tokens: PointPatches[], labels: Int32Array, batchSize: number): ValueReads<{ accuracy: number; loss: number }> {
  let right = 0;
  let lossSum = 0;
  for (let start = 0; start < tokens.length; start += batchSize) {
    const idx = Int32Array.from({ length: Math.min(batchSize, tokens.length - start) }, (_, i) => start + i);
    const y = labels.subarray(start, start + idx.length);
    const { logits, loss } = scoreBatch(model, tokens, idx, y);
    const [lossValue, logitValues] = yield [loss!, logits];
    lossSum += lossValue![0]! * idx.length;
    right += countMatches(argmaxRows(logitValues!, model.config.num_classes), y);
  }
  return { accuracy: right / tokens.length, loss: lossSum / tokens.length };
}

/** Accuracy and mean loss over tokenized clouds, in batches, without a graph (host backends). */
export function evaluatePointClouds(model: PointCloudTransformer, tokens: PointPatches[], labels: Int32Array, batchSize = 128): { accuracy: number; loss: number } {
  return inEvalMode(model, () => valuesNow(evaluation(model, tokens, labels, batchSize)));
}

/** evaluatePointClouds on any backend: a device backend's batches are read back as they finish. */
export function evaluatePointCloudsAsync(model: PointCloudTransformer, tokens: PointPatches[], labels: Int32Array, batchSize = 128): Promise<{ accuracy: number; loss: number }> {
  return inEvalMode(model, () => valuesAwaited(evaluation(model, tokens, labels, batchSize)));
}

/** Every cloud tokenized and scored in one batch; the scores read once, then each cloud's class and softmax probabilities. */
function* prediction(model: PointCloudTransformer, clouds: Float32Array[], names: string[]): ValueReads<Array<{ label: number; probabilities: number[] }>> {
  const tokens = tokenizeClouds(model, { clouds, names, labels: new Int32Array(clouds.length), classes: model.config.labels });
  const { logits } = scoreBatch(model, tokens, Int32Array.from(clouds, (_, i) => i));
  const [values] = yield [logits];
  return classPredictions(values!, model.config.num_classes);
}

/** Class and softmax probabilities for each cloud (host backends). */
export function predictPointClouds(model: PointCloudTransformer, clouds: Float32Array[], names: string[]): Array<{ label: number; probabilities: number[] }> {
  return inEvalMode(model, () => valuesNow(prediction(model, clouds, names)));
}

/** predictPointClouds on any backend: on a device the scores are read back once. */
export function predictPointCloudsAsync(model: PointCloudTransformer, clouds: Float32Array[], names: string[]): Promise<Array<{ label: number; probabilities: number[] }>> {
  return inEvalMode(model, () => valuesAwaited(prediction(model, clouds, names)));
}

export function pointModelFor(classes: string[], o: PointCloudTrainOptions): PointCloudTransformer {
  const config = parsePointTransformerConfig({
    num_groups: o.groups, group_size: o.groupSize, point_hidden: o.pointHidden, d_model: o.dModel, n_layer: o.layers,
    n_head: o.heads, d_ff: o.dFf ?? 2 * o.dModel, dropout: o.dropout, num_classes: classes.length, labels: classes,
  }, 'point-cloud model');
  return new PointCloudTransformer(config, new Rng(o.seed));
}

/** What one training run is given: the data, its name for trainer.json, the options, and where to save (if anywhere). */
export interface PointCloudRun {
  data: PointCloudDataset;
  dataName: string;
  options: PointCloudTrainOptions;
  out?: string;
}

/**
 * Train a point-cloud classifier: tokenize every cloud once, then shuffled
 * mini-batches each epoch (each cloud freshly rotated), cross-entropy,
 * AdamW with warm-up and cosine decay; after every epoch evaluate on the
 * test set and save the model atomically. Host backends;
 * trainPointCloudsAsync trains on any backend.
 */
export function trainPointClouds(run: PointCloudRun, events: PointCloudTrainEvents = {}): PointCloudTrainSummary {
  const t = pointCloudTrainingRun(run, events, false);
  return t.summary(runTraining(t.loop));
}

/**
 * trainPointClouds on any backend. On a device backend (webgpu) the weights
 * and the optimizer state stay on the device; the loss is read back every log
 * interval, each step's predictions as they finish (for the progress line's
 * accuracy), an evaluation reads its losses and logits, a checkpoint the
 * weights once. Tokenizing and rotating the clouds stay on the host.
 */
export async function trainPointCloudsAsync(run: PointCloudRun, events: PointCloudTrainEvents = {}): Promise<PointCloudTrainSummary> {
  const t = pointCloudTrainingRun(run, events, true);
  return t.summary(await runTrainingAsync(t.loop));
}

/** The loop of one run (for either driver), and how its result becomes the summary. */
function pointCloudTrainingRun(run: PointCloudRun, events: PointCloudTrainEvents, async: boolean): { loop: TrainingLoop<Int32Array>; summary(result: LoopResult): PointCloudTrainSummary } {
  const t0 = performance.now();
  const o = run.options;
  const { train, test } = run.data;
  if (train.clouds.length === 0) throw new UserError('no training clouds');
  if (train.classes.length < 2) throw new UserError(`found ${train.classes.length} class (${train.classes.join(', ')}); a classifier needs at least 2`);
  const model = pointModelFor(train.classes, o);
  const trainTokens = tokenizeClouds(model, train);
  const testTokens = tokenizeClouds(model, test);
  const opt = new AdamW(model.namedParameters(), { lr: o.lr, beta1: o.beta1, beta2: o.beta2, eps: 1e-8, weightDecay: o.weightDecay });
  const { stepsPerEpoch, maxSteps, schedule, epochOf } = epochPlan(train.clouds.length, o);
  const rng = new Rng(o.seed + 1);
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
  const loop: TrainingLoop<Int32Array> = {
    opt,
    objective,
    maxSteps,
    schedule,
    gradClip: o.gradClip,
    nextBatches,
    size: (b) => b.length,
    evalInterval: stepsPerEpoch,
    readInterval: o.logInterval,
    evaluate: (step) => {
      const record = (r: { accuracy: number; loss: number }): number[] => {
        last = { epoch: epochOf(step), step, testLoss: r.loss, testAccuracy: r.accuracy };
        history.push(last);
        events.onEval?.(last);
        return [r.loss];
      };
      return async ? evaluatePointCloudsAsync(model, testTokens, test.labels).then(record) : record(evaluatePointClouds(model, testTokens, test.labels));
    },
    checkpoint: run.out
      ? {
          dir: run.out,
          save: (step) => {
            const record = { data: run.dataName, options: o, step, epoch: epochOf(step), history };
            const write = () => writeDirAtomic(run.out!, { ...pointTransformerFiles(model), 'trainer.json': JSON.stringify(record, null, 2) + '\n' });
            // On a device backend the weights are read back once, all together, for the save (on a host: at once).
            return onHost(model.parameters(), write);
          },
        }
      : undefined,
    onCheckpoint: events.onCheckpoint,
    onStep: (p) => {
      if (window.add(p)) {
        const w = window.take();
        events.onStep?.({ step: p.step, maxSteps, epoch: epochOf(p.step), lr: p.lr, loss: w.loss, accuracy: w.accuracy, cloudsPerSecond: w.itemsPerSecond, eta: p.eta });
      }
    },
  };
  const summary = (result: LoopResult): PointCloudTrainSummary => {
    const final = last as PointCloudEvalInfo | null;
    return {
      epochs: final?.epoch ?? 0, steps: result.step, test_accuracy: final?.testAccuracy ?? NaN, test_loss: final?.testLoss ?? NaN,
      train_seconds: result.seconds, seconds: (performance.now() - t0) / 1000, clouds_per_s: result.items / Math.max(result.seconds, 1e-9),
    };
  };
  return { loop, summary };
}
