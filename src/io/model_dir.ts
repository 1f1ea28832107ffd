import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GPT } from '../models/gpt.js';
import { parseGPTConfig, type GPTConfig } from '../models/gpt_config.js';
import { loadDirTokenizer, type Tokenizer } from '../tokenizers/index.js';
import { Rng } from '../util/rng.js';
import { recoverDir } from './atomic.js';
import { UserError } from './errors.js';
import { configFromHF, weightsFromHF } from './hf_gpt2.js';
import { readSafetensors, serializeSafetensors, SafetensorsError, type TensorEntry } from './safetensors.js';

export const MODEL_FORMAT = 'attn';

export interface LoadedModel {
  model: GPT;
  tokenizer: Tokenizer | null;
  config: GPTConfig;
  /** Where the weights came from: our own checkpoint or a Hugging Face GPT-2 directory. */
  source: 'attn' | 'hf-gpt2';
}

function readJSON(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: ${e instanceof SyntaxError ? 'invalid JSON: ' : ''}${(e as Error).message}`);
  }
}

/** The files that describe a model, as bytes/strings ready for writeDirAtomic. */
export function modelFiles(model: GPT, tokenizer: Tokenizer | null): Record<string, Uint8Array | string> {
  const config = { format: MODEL_FORMAT, model_type: 'attn-gpt', ...model.config };
  const tensors = new Map<string, TensorEntry>(model.namedParameters().map(([n, p]) => [n, { dtype: 'F32', shape: p.shape, data: p.data }]));
  const files: Record<string, Uint8Array | string> = {
    'config.json': JSON.stringify(config, null, 2) + '\n',
    'model.safetensors': serializeSafetensors(tensors, { format: MODEL_FORMAT }),
  };
  if (tokenizer) files['tokenizer.json'] = JSON.stringify(tokenizer.toJSON()) + '\n';
  return files;
}

/**
 * Load a model directory: ours (config.json with "format": "attn") or a
 * Hugging Face GPT-2 one (config.json with "model_type": "gpt2", Conv1D
 * weights). Any missing, extra or mis-shaped tensor is an error.
 */
export function loadModel(dir: string): LoadedModel {
  recoverDir(dir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`model directory ${dir} does not exist`);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new UserError(`${dir} has no config.json: not a model directory`);
  const raw = readJSON(configPath) as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null) throw new UserError(`${configPath}: expected a JSON object`);
  const weightsPath = join(dir, 'model.safetensors');
  if (!existsSync(weightsPath)) throw new UserError(`${dir} has no model.safetensors`);
  let tensors: Map<string, TensorEntry>;
  try {
    tensors = readSafetensors(weightsPath).tensors;
  } catch (e) {
    if (e instanceof SafetensorsError) throw new UserError(e.message);
    throw e;
  }

  let config: GPTConfig;
  let weights: Map<string, { shape: number[]; data: Float32Array | Int32Array | BigInt64Array }>;
  let source: LoadedModel['source'];
  if (raw.model_type === 'gpt2') {
    config = configFromHF(raw, configPath);
    weights = weightsFromHF(tensors, weightsPath);
    source = 'hf-gpt2';
  } else if (raw.format === MODEL_FORMAT) {
    try {
      config = parseGPTConfig(raw, configPath);
    } catch (e) {
      throw new UserError((e as Error).message);
    }
    weights = tensors;
    source = 'attn';
  } else {
    const arch = raw.model_type ?? (Array.isArray(raw.architectures) ? raw.architectures[0] : undefined) ?? 'unknown';
    throw new UserError(`${configPath}: architecture "${String(arch)}" is not supported (attn loads its own GPT checkpoints and Hugging Face "gpt2" models)`);
  }

  const model = new GPT(config, new Rng(0));
  assignWeights(model, weights, weightsPath);
  model.eval();
  // Ours saves tokenizer.json; a Hugging Face GPT-2 directory has tokenizer.json or vocab.json + merges.txt.
  const tokenizer = loadDirTokenizer(dir);
  if (tokenizer && tokenizer.vocabSize > config.vocab_size) {
    throw new UserError(`${dir}: tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${config.vocab_size}`);
  }
  return { model, tokenizer, config, source };
}

function assignWeights(model: GPT, weights: Map<string, { shape: number[]; data: Float32Array | Int32Array | BigInt64Array }>, source: string): void {
  const params = model.namedParameters();
  for (const [name, p] of params) {
    const w = weights.get(name);
    if (!w) throw new UserError(`${source}: missing tensor ${name}`);
    if (w.shape.join() !== p.shape.join()) throw new UserError(`${source}: tensor ${name} has shape [${w.shape}] but the config needs [${p.shape}]`);
    if (!(w.data instanceof Float32Array)) throw new UserError(`${source}: tensor ${name} is not a float tensor`);
    p.data.set(w.data);
  }
  const known = new Set(params.map(([n]) => n));
  const extra = [...weights.keys()].filter((n) => !known.has(n));
  if (extra.length) throw new UserError(`${source}: unexpected tensor ${extra[0]}${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''} for this config`);
}
