/**
 * The training loop — one for every trainer (GPT, ViT, seq2seq, embedder, and
 * whatever objective comes next).
 *
 * A trainer is three things handed to runTraining:
 *   - an Objective (step.ts): a batch → a scalar loss;
 *   - a data source: nextBatches(step), the micro-batches of each step;
 *   - loop settings: how many steps, the learning-rate schedule, when to
 *     evaluate, and how to evaluate and save.
 *
 * The loop owns what every run needs and no trainer should copy: the steps
 * themselves (trainStep), timing, throughput and ETA, evaluation and
 * checkpoints at the trainer's intervals, resuming from step0, and the NaN
 * guard — a loss that stops being a number stops the run with DivergedError
 * *before* anything is saved, so the last good checkpoint survives.
 *
 * One loop, two drivers. On a host backend every number exists the moment a
 * step returns; on a device backend (webgpu) a number exists only after an
 * await, and waiting at every step would leave the GPU idle while JavaScript
 * queues the next one. Rather than keep two copies of the loop, it is written
 * once as a generator that `yield`s wherever it needs a result — a step's
 * loss, an evaluation, a save — and is handed the result back:
 *   - runTraining hands results straight back: synchronous, for host backends;
 *   - runTrainingAsync awaits them, on any backend. On a device backend it
 *     reads a step's loss back only every `readInterval` steps (the log
 *     interval) and at evaluation steps; the steps between are queued whole
 *     (forward, backward, clipping on the device, AdamW) and never waited for.
 */
import { backend } from '../backend/index.js';
import type { AdamW } from '../optim/adamw.js';
import { learningRate, type ScheduleOptions } from '../optim/schedule.js';
import { UserError } from '../util/errors.js';
import { queueTrainStep, trainStep, trainStepAsync, type Objective, type StepResult, type StepSettings } from './step.js';

/** Thrown when the loss stops being a number; the last good checkpoint is kept. */
export class DivergedError extends UserError {}

/** Progress after one step, for progress bars and logs. */
export interface LoopStep {
  /** Steps done (1-based after the first step) and the step the run stops at. */
  step: number;
  maxSteps: number;
  /**
   * Mean loss of this step's micro-batches, and the step's learning rate and
   * pre-clip gradient norm. On a device backend, the loss and norm of the last
   * step read back (every readInterval steps; NaN before the first).
   */
  loss: number;
  /** Whether `loss` is this step's own: always on a host backend; on a device, at the steps read back. */
  read: boolean;
  lr: number;
  gradNorm: number;
  /** Tokens or examples in this step (the data source's `size`) and its wall time. */
  items: number;
  seconds: number;
  /** Items per second over the steps of this call (not counting steps before a resume). */
  itemsPerSecond: number;
  /** Seconds left at this call's pace. */
  eta: number;
}

/** The progress event of the token-counting trainers (GPT, seq2seq, embedder). */
export interface StepInfo {
  step: number;
  maxIters: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokensPerSecond: number;
  /** Seconds left at the current pace. */
  eta: number;
}

/**
 * What a trainer tells its caller (a CLI progress bar, the playground): the
 * same four moments for every trainer, with the trainer's own start, step and
 * evaluation records.
 */
export interface TrainingEvents<Start, Eval, Step = StepInfo> {
  onStart?(info: Start): void;
  onStep?(info: Step): void;
  onEval?(info: Eval): void;
  onCheckpoint?(info: { step: number; dir: string }): void;
}

export const tokenStepInfo = (p: LoopStep): StepInfo => ({
  step: p.step, maxIters: p.maxSteps, loss: p.loss, lr: p.lr, gradNorm: p.gradNorm, tokensPerSecond: p.itemsPerSecond, eta: p.eta,
});

export interface TrainingLoop<B> {
  opt: AdamW;
  objective: Objective<B>;
  /** Steps already taken (0 for a fresh run, the checkpoint's step on resume). */
  step0?: number;
  maxSteps: number;
  /** The learning-rate schedule (warm-up, then cosine decay), read at each step. */
  schedule: ScheduleOptions;
  /** Clip the global gradient norm to this; 0 disables. */
  gradClip: number;
  /** The data source: the micro-batches (one, or gradAccum) of the step after `step` steps. */
  nextBatches(step: number): B[];
  /** Tokens or examples in one micro-batch, for throughput. */
  size(batch: B): number;
  /** Evaluate and checkpoint every this many steps (an epoch's, for epoch-based runs) and after the final one. */
  evalInterval: number;
  /**
   * Measure held-out quality after `step` steps. Returns the losses it
   * measured, if any: the NaN guard checks them before anything is saved.
   */
  evaluate(step: number): Awaitable<readonly number[] | void>;
  /** Where and how to save a checkpoint after `step` steps (atomically: a failed save keeps the last one). */
  checkpoint?: { dir: string; save(step: number): unknown /* on a device backend, a promise the loop awaits */ };
  /**
   * runTrainingAsync on a device backend: read the loss back every this many
   * steps (default 1), and always at evaluation steps and the last step. A
   * loss that is not a number is caught at the next read — before any save.
   */
  readInterval?: number;
  /** Where the last good checkpoint is before this call saves one (the directory resumed from). */
  savedIn?: string;
  onStep?(p: LoopStep): void;
  onCheckpoint?(info: { step: number; dir: string }): void;
  /**
   * A time-limited run: asked before each step (given the last step's
   * seconds, 0 before the first), true ends the run there — then it
   * evaluates and saves as after the last step.
   */
  stopBefore?(lastStepSeconds: number): boolean;
  /** The step the learning-rate schedule reads (default: the step itself); a time-limited run advances it by the clock. */
  scheduleStep?(step: number): number;
}

/** A value, or — where a device backend has it only later — a promise of it (runTrainingAsync awaits it). */
export type Awaitable<T> = T | Promise<T>;

export interface LoopResult {
  /** Steps done in all (including those before a resume), and in this call. */
  step: number;
  steps: number;
  /** The last step's loss (NaN if no step ran); on a device backend, the last one read back. */
  loss: number;
  /** Wall time of this call's steps (evaluation and saving excluded) and their items. */
  seconds: number;
  items: number;
}

/**
 * Run steps step0+1 … maxSteps. After each, report progress; at the
 * trainer's evaluation points evaluate, then checkpoint. When no step runs
 * (resumed at the end, or zero steps asked for) it still evaluates once so
 * the summary has numbers, and saves only a run that did not resume (a
 * resumed one has nothing new to save). Host backends only: every callback
 * must return its value, not a promise.
 */
export function runTraining<B>(l: TrainingLoop<B>): LoopResult {
  const run = loop(l, (batches, s) => trainStep(l.opt, l.objective, batches, s));
  let next = run.next();
  while (!next.done) {
    if (next.value instanceof Promise) throw new Error('runTraining: a callback returned a promise; train on a device backend with runTrainingAsync');
    next = run.next(next.value);
  }
  return next.value;
}

/** runTraining on any backend: awaits what the loop waits for (on a device backend, only at read, evaluation and save steps). */
export async function runTrainingAsync<B>(l: TrainingLoop<B>): Promise<LoopResult> {
  const onDevice = backend().device !== undefined;
  const run = loop(l, (batches, s, read) =>
    read || !onDevice ? trainStepAsync(l.opt, l.objective, batches, s) : queueTrainStep(l.opt, l.objective, batches, s));
  let next = run.next();
  while (!next.done) next = run.next(await next.value);
  return next.value;
}

/** One step: its result, or null for a device step queued without reading its loss back. */
type TakeStep<B> = (batches: B[], s: StepSettings, read: boolean) => Awaitable<StepResult | null>;

/**
 * The loop itself, for both drivers. Each `yield` hands the driver something
 * that may still be pending (a step, an evaluation, a save) and resumes with
 * its value.
 */
function* loop<B>(l: TrainingLoop<B>, takeStep: TakeStep<B>): Generator<unknown, LoopResult, unknown> {
  const step0 = l.step0 ?? 0;
  const readInterval = Math.max(1, l.readInterval ?? 1);
  let step = step0;
  let savedIn = l.savedIn;
  let loss = NaN;
  let gradNorm = NaN;
  let seconds = 0;
  let items = 0;
  let evaluatedAt = -1;
  function* evaluateAndSave(save: boolean): Generator<unknown, void, unknown> {
    const losses = ((yield l.evaluate(step)) as readonly number[] | void) ?? [];
    if (losses.some((v) => !Number.isFinite(v))) throw diverged(`in the evaluation after step ${step}`, savedIn);
    evaluatedAt = step;
    if (save && l.checkpoint) {
      yield l.checkpoint.save(step);
      savedIn = l.checkpoint.dir;
      l.onCheckpoint?.({ step, dir: savedIn });
    }
  }

  let lastDt = 0;
  while (step < l.maxSteps && !l.stopBefore?.(lastDt)) {
    const t0 = performance.now();
    const lr = learningRate(l.scheduleStep?.(step) ?? step, l.schedule);
    const batches = l.nextBatches(step);
    const evaluating = (step + 1) % l.evalInterval === 0 || step + 1 === l.maxSteps;
    const r = (yield takeStep(batches, { lr, gradClip: l.gradClip }, evaluating || (step + 1) % readInterval === 0)) as StepResult | null;
    if (r && !Number.isFinite(r.loss)) throw diverged(`at step ${step + 1}`, savedIn);
    step++;
    const dt = (performance.now() - t0) / 1000;
    lastDt = dt;
    const n = batches.reduce((sum, b) => sum + l.size(b), 0);
    if (r) ({ loss, gradNorm } = r);
    seconds += dt;
    items += n;
    const taken = step - step0;
    l.onStep?.({ step, maxSteps: l.maxSteps, loss, read: r !== null, lr, gradNorm, items: n, seconds: dt, itemsPerSecond: items / seconds, eta: ((l.maxSteps - step) * seconds) / taken });
    if (evaluating) yield* evaluateAndSave(true);
  }
  if (evaluatedAt !== step) yield* evaluateAndSave(step0 === 0);
  return { step, steps: step - step0, loss, seconds, items };
}
function diverged(where: string, savedIn: string | undefined): DivergedError {
  const kept = savedIn ? ` The last good checkpoint is kept in ${savedIn}.` : '';
  return new DivergedError(`training diverged: loss is not finite ${where} (try a lower --lr).${kept}`);
}
