import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { recoverDir, writeDirAtomic } from '../io/atomic.js';
import { UserError } from '../util/errors.js';
import { loadModel, modelFiles } from '../io/model_dir.js';
import { readSafetensors, serializeSafetensors, SafetensorsError, type TensorEntry } from '../io/safetensors.js';
import type { CausalLM } from '../models/causal_lm.js';
import type { Rng } from '../util/rng.js';
import type { AdamW } from '../optim/adamw.js';
import { withAverage, type WeightAverage } from '../optim/weight_average.js';
import { backend } from '../backend/index.js';
import { isHost } from '../backend/storage.js';
import { withHostValues } from '../nn/placement.js';
import { readStorage } from '../tensor/tensor.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import type { RngState } from '../util/rng.js';
import type { TrainOptions } from './options.js';

/** Everything besides weights that resuming needs to continue exactly. */
export interface TrainerState {
  step: number;
  options: TrainOptions;
  data: { path: string; sha256: string; tokens: number };
  rng: { batch: { s: RngState; spare: number | null }; model: { s: RngState; spare: number | null } };
  history: Array<{ step: number; train_loss: number; val_loss: number }>;
  seconds: number;
  tokens: number;
  /** Steps folded into the weight average (--ema, --average-from); the model file holds the average. */
  average?: { count: number };
}

/**
 * Write model, tokenizer, optimizer moments and trainer state as one atomic
 * directory. Host backends; a device backend saves with saveCheckpointAsync.
 * With a weight average, the model file holds the average (the weights the
 * run is judged and used by) and the optimizer file the trained weights as
 * well (`training.NAME`), so that a resumed run continues from them.
 */
export function saveCheckpoint(dir: string, model: CausalLM, tokenizer: Tokenizer, opt: AdamW, state: TrainerState, average?: WeightAverage): void {
  const { mAll, vAll } = opt;
  if (!isHost(mAll) || !isHost(vAll) || !isHost(opt.arena.data)) throw new Error('saveCheckpoint: the optimizer state is on the device (saveCheckpointAsync)');
  const trained = average ? Float32Array.from(opt.arena.data) : null; // a copy: the swap below overwrites the arena
  withAverage(average, () => writeCheckpoint(dir, model, tokenizer, opt, state, mAll, vAll, trained));
}

/**
 * saveCheckpoint on any backend: the weights and the Adam moments read back
 * from the device once, then the same atomic write. The device copies stay
 * where they are; if the device is lost during the reads nothing is written
 * and the last checkpoint is left as it was.
 */
export async function saveCheckpointAsync(dir: string, model: CausalLM, tokenizer: Tokenizer, opt: AdamW, state: TrainerState, average?: WeightAverage): Promise<void> {
  const [mAll, vAll, trained] = await Promise.all([readStorage(opt.mAll), readStorage(opt.vAll), average ? readStorage(opt.arena.data).then((a) => Float32Array.from(a)) : null]);
  await withAverage(average, () => withHostValues(model.parameters(), () => writeCheckpoint(dir, model, tokenizer, opt, state, mAll, vAll, trained)));
}

/**
 * optimizer.safetensors: the Adam moments (exp_avg.NAME, exp_avg_sq.NAME) and
 * the step, from host copies of the optimizer's moment arenas (on a host
 * backend, the arenas themselves); with a weight average, the trained weights
 * too (training.NAME), since model.safetensors then holds the average.
 */
export function momentsFile(opt: AdamW, mAll: Float32Array, vAll: Float32Array, trained: Float32Array | null = null): Uint8Array {
  const moments = new Map<string, TensorEntry>();
  for (const [name, p] of opt.params) {
    const at = opt.arena.offsets.get(name)!;
    moments.set(`exp_avg.${name}`, { dtype: 'F32', shape: p.shape, data: mAll.subarray(at, at + p.size) });
    moments.set(`exp_avg_sq.${name}`, { dtype: 'F32', shape: p.shape, data: vAll.subarray(at, at + p.size) });
    if (trained) moments.set(`training.${name}`, { dtype: 'F32', shape: p.shape, data: trained.subarray(at, at + p.size) });
  }
  return serializeSafetensors(moments, { step: String(opt.step) });
}

function writeCheckpoint(dir: string, model: CausalLM, tokenizer: Tokenizer, opt: AdamW, state: TrainerState, mAll: Float32Array, vAll: Float32Array, trained: Float32Array | null): void {
  writeDirAtomic(dir, {
    ...modelFiles(model, tokenizer),
    'optimizer.safetensors': momentsFile(opt, mAll, vAll, trained),
    'trainer.json': JSON.stringify(state, null, 2) + '\n',
  });
}

export interface LoadedCheckpoint {
  model: CausalLM & { readonly rng: Rng };
  tokenizer: Tokenizer;
  state: TrainerState;
  moments: Map<string, TensorEntry>;
  optimizerStep: number;
}

export function loadCheckpoint(dir: string): LoadedCheckpoint {
  recoverDir(dir);
  const { model, tokenizer, source } = loadModel(dir);
  if (source !== 'attn' || !tokenizer) throw new UserError(`${dir} is not an attn training checkpoint (no tokenizer.json)`);
  const statePath = join(dir, 'trainer.json');
  const optPath = join(dir, 'optimizer.safetensors');
  if (!existsSync(statePath) || !existsSync(optPath)) throw new UserError(`${dir} has no trainer.json/optimizer.safetensors: it holds a model but no training state to resume`);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8')) as TrainerState;
  } catch (e) {
    throw new UserError(`${statePath}: ${(e as Error).message}`);
  }
  try {
    const file = readSafetensors(optPath);
    return { model, tokenizer, state, moments: file.tensors, optimizerStep: Number(file.metadata.step ?? state.step) };
  } catch (e) {
    if (e instanceof SafetensorsError) throw new UserError(e.message);
    throw e;
  }
}

/** Put saved Adam moments back into a fresh optimizer, checking every shape (uploaded once to a device backend). */
export function restoreOptimizer(opt: AdamW, moments: Map<string, TensorEntry>, step: number, source: string): void {
  for (const [prefix, all] of [['exp_avg', opt.mAll], ['exp_avg_sq', opt.vAll]] as const) {
    const values = isHost(all) ? all : new Float32Array(all.length);
    for (const [name, p] of opt.params) {
      const t = moments.get(`${prefix}.${name}`);
      if (!t || !(t.data instanceof Float32Array) || t.data.length !== p.size) {
        throw new UserError(`${source}: optimizer state ${prefix}.${name} is missing or has the wrong size`);
      }
      values.set(t.data, opt.arena.offsets.get(name)!);
    }
    if (!isHost(all)) backend().device!.write(all, values);
  }
  opt.step = step;
}

/**
 * A resumed run that averages its weights: the model file held the average
 * (take it as the WeightAverage's start first); put the trained weights
 * (`training.NAME`) back into the arena to continue from.
 */
export function restoreTrainedWeights(opt: AdamW, saved: Map<string, TensorEntry>, source: string): void {
  const values = new Float32Array(opt.arena.data.length);
  for (const [name, p] of opt.params) {
    const t = saved.get(`training.${name}`);
    if (!t || !(t.data instanceof Float32Array) || t.data.length !== p.size) {
      throw new UserError(`${source}: the trained weights training.${name} are missing or have the wrong size (the model file holds their average)`);
    }
    values.set(t.data, opt.arena.offsets.get(name)!);
  }
  if (isHost(opt.arena.data)) opt.arena.data.set(values);
  else backend().device!.write(opt.arena.data, values);
}
