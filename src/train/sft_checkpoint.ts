/**
 * Checkpoints of the fine-tuning trainers (SFT, DPO, the reward model): a
 * model directory any attn command loads (config.json, model.safetensors,
 * tokenizer.json), plus the optimizer's moments and the trainer's state so
 * `--resume` continues exactly — written as one atomic directory, like
 * `attn train`'s (train/checkpoint.ts), with the trainer's own state file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { recoverDir, writeDirAtomic } from '../io/atomic.js';
import { loadModel, modelFiles } from '../io/model_dir.js';
import { readSafetensors, serializeSafetensors, SafetensorsError, type TensorEntry } from '../io/safetensors.js';
import type { DecoderLM } from '../models/causal_lm.js';
import { dequantize } from '../nn/quantized_linear.js';
import { Linear } from '../nn/linear.js';
import { loraLayers, mergeLoRA } from '../nn/lora.js';
import { ADAPTER_CONFIG, adapterFiles, loadAdapter } from '../io/peft.js';
import type { AdamW } from '../optim/adamw.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import { momentsFile, restoreOptimizer } from './checkpoint.js';
import { isHost } from '../backend/storage.js';
import { onHost } from '../nn/placement.js';
import { readStorage } from '../tensor/tensor.js';

/**
 * Save model + tokenizer + optimizer + `stateFile` (the trainer's JSON state)
 * + any `extra` files, atomically: a crash keeps the previous checkpoint.
 * Host backends; a device backend saves with saveFineTuneCheckpointAsync.
 */
export function saveFineTuneCheckpoint(dir: string, model: DecoderLM, tokenizer: Tokenizer, opt: AdamW | null, stateFile: string, state: unknown, extra: Record<string, Uint8Array | string> = {}): void {
  let moments: Uint8Array | null = null;
  if (opt) {
    const { mAll, vAll } = opt;
    if (!isHost(mAll) || !isHost(vAll)) throw new Error('saveFineTuneCheckpoint: the optimizer state is on the device (saveFineTuneCheckpointAsync)');
    moments = momentsFile(opt, mAll, vAll);
  }
  writeFineTuneDir(dir, model, tokenizer, moments, stateFile, state, extra);
}

/**
 * saveFineTuneCheckpoint on any backend: on a device the Adam moments and the
 * weights are read back once, all together, and the same files are written
 * (a device lost before the write leaves the last checkpoint as it was).
 */
export async function saveFineTuneCheckpointAsync(dir: string, model: DecoderLM, tokenizer: Tokenizer, opt: AdamW, stateFile: string, state: unknown, extra: Record<string, Uint8Array | string> = {}): Promise<void> {
  const [mAll, vAll] = await Promise.all([readStorage(opt.mAll), readStorage(opt.vAll)]);
  await onHost(model.parameters(), () => writeFineTuneDir(dir, model, tokenizer, momentsFile(opt, mAll, vAll), stateFile, state, extra));
}

function writeFineTuneDir(dir: string, model: DecoderLM, tokenizer: Tokenizer, moments: Uint8Array | null, stateFile: string, state: unknown, extra: Record<string, Uint8Array | string>): void {
  writeDirAtomic(dir, {
    ...baseModelFiles(model, tokenizer),
    ...(loraLayers(model).length ? adapterFiles(model) : {}),
    ...(moments ? { 'optimizer.safetensors': moments } : {}),
    [stateFile]: JSON.stringify(state, null, 2) + '\n',
    ...extra,
  });
}

/**
 * The model's files without its LoRA adapters: the base, as loadModel reads
 * it (the adapters are saved beside it in PEFT's layout). The LoRA layers are
 * swapped for plain Linears over the same weights while the files are made.
 */
function baseModelFiles(model: DecoderLM, tokenizer: Tokenizer): Record<string, Uint8Array | string> {
  const layers = loraLayers(model);
  for (const [name, l] of layers) {
    const [outF, inF] = l.weight.shape as [number, number];
    model.replaceModule(name, new Linear(inF, outF, { weight: l.weight, bias: l.bias }));
  }
  try {
    return modelFiles(model, tokenizer);
  } finally {
    for (const [name, l] of layers) model.replaceModule(name, l);
  }
}

/**
 * A decoder to fine-tune or evaluate (ours, a Hugging Face GPT-2 or
 * Llama-family one) with its tokenizer, as fp32 weights. A directory that
 * also holds a LoRA adapter (what `--lora` runs save) comes with the adapter
 * applied: merged into the weights, or kept as trainable LoRA layers when
 * `keepAdapter` (resuming a LoRA run).
 */
export function loadDecoder(dir: string, flag: string, opts: { keepAdapter?: boolean } = {}): { model: DecoderLM; tokenizer: Tokenizer } {
  const { model, tokenizer } = loadModel(dir);
  if (!tokenizer) throw new UserError(`${flag} ${dir}: the model has no tokenizer`);
  dequantize(model); // an int8 model trains as fp32 Linears holding its dequantized weights
  if (existsSync(join(dir, ADAPTER_CONFIG))) {
    loadAdapter(model, dir);
    if (!opts.keepAdapter) mergeLoRA(model);
  }
  return { model, tokenizer };
}

/** The trainer state a checkpoint holds, or a clear error when it is not this trainer's checkpoint. */
export function readTrainerState<S>(dir: string, stateFile: string, command: string): S {
  recoverDir(dir);
  const path = join(dir, stateFile);
  if (!existsSync(path)) throw new UserError(`--resume ${dir}: no ${stateFile} — not a checkpoint of ${command}`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as S;
  } catch (e) {
    throw new UserError(`${path}: ${(e as Error).message}`);
  }
}

/** Put a checkpoint's Adam moments back into `opt`. */
export function restoreMoments(opt: AdamW, dir: string): void {
  const path = join(dir, 'optimizer.safetensors');
  if (!existsSync(path)) throw new UserError(`--resume ${dir}: no optimizer.safetensors to continue from`);
  try {
    const file = readSafetensors(path);
    restoreOptimizer(opt, file.tensors, Number(file.metadata.step ?? 0), dir);
  } catch (e) {
    if (e instanceof SafetensorsError) throw new UserError(e.message);
    throw e;
  }
}
