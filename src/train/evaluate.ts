import type { CausalLM } from '../models/causal_lm.js';
import { noGrad } from '../tensor/autograd.js';
import { allocStorage, copyStorage, readStorage, releaseStorage } from '../tensor/tensor.js';
import { isHost, type Storage } from '../backend/storage.js';
import { Rng } from '../util/rng.js';
import type { TokenDataset } from './data.js';

export interface EvalResult {
  train: number;
  val: number;
}

/**
 * An evaluation's forward passes, queued: every batch's loss copied into one
 * storage of the backend, and how those losses combine into the result. On a
 * host backend the result is there at once (`now`); on a device backend the
 * forward passes run on the device and one read brings the few losses back
 * (`read`) — no activation or logit ever crosses to the host.
 */
export class QueuedLosses<R> {
  constructor(private readonly losses: Storage, private readonly combine: (losses: Float32Array) => R) {}

  /** The result on a host backend (throws on a device one: use read). */
  now(): R {
    if (!isHost(this.losses)) throw new Error('QueuedLosses.now: the losses are on the device (await read())');
    return this.finish(this.losses);
  }

  /** The result on any backend, after one read. */
  async read(): Promise<R> {
    return this.finish(await readStorage(this.losses));
  }

  /** The result now on a host backend, a promise of it on a device one. */
  result(): R | Promise<R> {
    return isHost(this.losses) ? this.now() : this.read();
  }

  private finish(values: Float32Array): R {
    const r = this.combine(values);
    releaseStorage(this.losses);
    return r;
  }
}

/**
 * Run `forward` for each of `n` batches in eval mode without gradients,
 * copying each scalar loss into slot i of one storage.
 */
function queueLosses<R>(model: CausalLM, n: number, forward: (i: number) => { x: Int32Array; shape: [number, number]; y: Int32Array }, combine: (losses: Float32Array) => R): QueuedLosses<R> {
  const wasTraining = model.training;
  model.eval();
  const losses = allocStorage(Math.max(1, n), false);
  for (let i = 0; i < n; i++) {
    const { x, shape, y } = forward(i);
    noGrad(() => copyStorage(model.forward(x, shape, y).loss!.storage, 0, losses, i, 1));
  }
  model.train(wasTraining);
  return new QueuedLosses(losses, combine);
}

/**
 * Mean loss over `iters` batches of each split. The batches come from a fixed
 * seed, so every evaluation sees the same windows: changes between evals are
 * the model's, not sampling noise — and training's own RNG is left untouched.
 */
export function queueEstimateLoss(model: CausalLM, data: TokenDataset, batchSize: number, iters: number, seed: number): QueuedLosses<EvalResult> {
  const rngs = { train: new Rng(seed + 1), val: new Rng(seed + 2) };
  return queueLosses(model, 2 * iters, (i) => {
    const split = i < iters ? 'train' : 'val';
    const { x, y } = data.batch(split, batchSize, rngs[split]);
    return { x, shape: [batchSize, data.blockSize], y };
  }, (losses) => {
    const mean = (from: number): number => {
      let sum = 0;
      for (let i = from; i < from + iters; i++) sum += losses[i]!;
      return sum / iters;
    };
    return { train: mean(0), val: mean(iters) };
  });
}

/** queueEstimateLoss's result on a host backend. */
export function estimateLoss(model: CausalLM, data: TokenDataset, batchSize: number, iters: number, seed: number): EvalResult {
  return queueEstimateLoss(model, data, batchSize, iters, seed).now();
}

/**
 * Mean next-token loss over the WHOLE validation split, every token predicted
 * once: the split cut into consecutive windows of blockSize (the last one
 * shorter), `batchSize` windows per forward pass. Slower than estimateLoss's
 * sample, but it is the number a recipe is judged by (no sampling noise).
 */
export function queueValidationLoss(model: CausalLM, data: TokenDataset, batchSize: number): QueuedLosses<number> {
  const val = data.val;
  const T = data.blockSize;
  const predicted = val.length - 1; // every token but the first is a target
  const full = Math.floor(predicted / T);
  // Each forward pass: [first window, windows, tokens per window].
  const passes: Array<[number, number, number]> = [];
  for (let w = 0; w < full; w += batchSize) passes.push([w, Math.min(batchSize, full - w), T]);
  const rest = predicted - full * T;
  if (rest > 0) passes.push([full, 1, rest]);
  return queueLosses(model, passes.length, (i) => {
    const [first, B, t] = passes[i]!;
    const x = new Int32Array(B * t);
    const y = new Int32Array(B * t);
    for (let b = 0; b < B; b++) {
      const at = (first + b) * T;
      x.set(val.subarray(at, at + t), b * t);
      y.set(val.subarray(at + 1, at + 1 + t), b * t);
    }
    return { x, shape: [B, t], y };
  }, (losses) => {
    // forward's loss is the mean over the B·t positions: weigh it back to a sum.
    let sum = 0;
    passes.forEach(([, B, t], i) => (sum += losses[i]! * B * t));
    return sum / predicted;
  });
}

/** queueValidationLoss's result on a host backend. */
export function validationLoss(model: CausalLM, data: TokenDataset, batchSize: number): number {
  return queueValidationLoss(model, data, batchSize).now();
}
