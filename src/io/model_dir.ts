import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GPT } from '../models/gpt.js';
import { parseGPTConfig, type GPTConfig } from '../models/gpt_config.js';
import { loadDirTokenizer, loadTokenizerFile, type Tokenizer } from '../tokenizers/index.js';
import { Rng } from '../util/rng.js';
import { dequantizeRows, isQuantized, namedLinears } from '../nn/int8.js';
import type { Int8Weight } from '../tensor/ops/linear_int8.js';
import { recoverDir } from './atomic.js';
import { UserError } from '../util/errors.js';
import { configFromHF, weightsFromHF } from './hf_gpt2.js';
import { readSafetensors, serializeSafetensors, SafetensorsError, type TensorEntry } from './safetensors.js';
import { withoutInit } from '../nn/init.js';
import type { QuantizedMatrix } from '../backend/quantized_matrix.js';
import { loadGGUFGPT2 } from './gguf_gpt2.js';

export const MODEL_FORMAT = 'attn';
/** config.json's "quantization" for int8 weight-only models (see nn/int8.ts). */
export const INT8_QUANTIZATION = { method: 'int8-weight-only', granularity: 'per-output-channel', activations: 'fp32' };
/** Written by `attn export --to hf` when the tokenizer has no GPT-2 file form (char, word, non-GPT-2 BPE). */
export const ATTN_TOKENIZER_FILE = 'attn_tokenizer.json';

type Weights = Map<string, { shape: number[]; data: Float32Array | Int32Array | BigInt64Array | Int8Array }>;

export interface LoadedModel {
  model: GPT;
  tokenizer: Tokenizer | null;
  config: GPTConfig;
  /** Where the weights came from: our own checkpoint, a Hugging Face GPT-2 directory or a GGUF file. */
  source: 'attn' | 'hf-gpt2' | 'gguf';
  /** A GGUF file's block-quantized matrices as stored, by parameter name (the parameters hold their dequantized values). */
  quantized?: Map<string, QuantizedMatrix>;
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
  const quantized = isQuantized(model);
  const config = { format: MODEL_FORMAT, model_type: 'attn-gpt', ...model.config, ...(quantized ? { quantization: INT8_QUANTIZATION } : {}) };
  const int8 = int8Weights(model);
  const tensors = new Map<string, TensorEntry>();
  for (const [n, p] of model.namedParameters()) {
    const q = int8.get(n);
    if (!q) tensors.set(n, { dtype: 'F32', shape: p.shape, data: p.data });
    else {
      tensors.set(n, { dtype: 'I8', shape: p.shape, data: q.data });
      tensors.set(`${n}.scale`, { dtype: 'F32', shape: [q.shape[0]], data: q.scale });
    }
  }
  const files: Record<string, Uint8Array | string> = {
    'config.json': JSON.stringify(config, null, 2) + '\n',
    'model.safetensors': serializeSafetensors(tensors, { format: MODEL_FORMAT }),
  };
  if (tokenizer) files['tokenizer.json'] = JSON.stringify(tokenizer.toJSON()) + '\n';
  return files;
}

/** attn's other architectures: loadModel names them instead of failing on their tensors. */
const OTHER_MODEL_KINDS: Record<string, { what: string; command: string }> = {
  'transformer-seq2seq': { what: 'an encoder–decoder (seq2seq) translation model', command: 'attn translate --model DIR TEXT' },
  vit: { what: 'a ViT image classifier', command: 'attn vit eval --model DIR --data DIR' },
  embedder: { what: 'a sentence embedder', command: 'attn embed --model DIR TEXT' },
};

/**
 * Load a model directory: ours (config.json with "format": "attn") or a
 * Hugging Face GPT-2 one (config.json with "model_type": "gpt2", Conv1D
 * weights), or a GGUF file (FILE.gguf, architecture "gpt2": io/gguf_gpt2.ts).
 * Any missing, extra or mis-shaped tensor is an error.
 */
export function loadModel(dir: string): LoadedModel {
  if (/\.gguf$/i.test(dir) && existsSync(dir) && statSync(dir).isFile()) {
    const g = loadGGUFGPT2(dir);
    return { model: g.model, tokenizer: g.tokenizer, config: g.config, source: 'gguf', quantized: g.quantized };
  }
  recoverDir(dir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`model directory ${dir} does not exist`);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new UserError(`${dir} has no config.json: not a model directory`);
  const raw = readJSON(configPath) as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null) throw new UserError(`${configPath}: expected a JSON object`);
  const other = OTHER_MODEL_KINDS[String(raw.model_type)];
  if (other) throw new UserError(`${dir} holds ${other.what}, not a GPT language model: use \`${other.command}\``);
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
  let weights: Weights;
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

  const model = withoutInit(() => new GPT(config, new Rng(0))); // every weight is assigned below
  assignWeights(model, weights, weightsPath);
  model.eval();
  // Ours saves tokenizer.json; a Hugging Face GPT-2 directory has tokenizer.json or vocab.json + merges.txt.
  let tokenizer = loadDirTokenizer(dir);
  if (!tokenizer && existsSync(join(dir, ATTN_TOKENIZER_FILE))) tokenizer = loadTokenizerFile(join(dir, ATTN_TOKENIZER_FILE));
  if (tokenizer && tokenizer.vocabSize > config.vocab_size) {
    throw new UserError(`${dir}: tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${config.vocab_size}`);
  }
  return { model, tokenizer, config, source };
}

/** Parameter name → int8 weight, for the matrices a quantized model holds in int8. */
function int8Weights(model: GPT): Map<string, Int8Weight> {
  const out = new Map<string, Int8Weight>();
  for (const [name, lin] of namedLinears(model)) if (lin.int8) out.set(`${name}.weight`, lin.int8);
  if (model.headInt8) out.set('wte.weight', model.headInt8);
  return out;
}

/** Attach an int8 weight to the Linear (or the tied head) that owns parameter `name`. */
function attachInt8(model: GPT, name: string, q: Int8Weight): void {
  if (name === 'wte.weight') model.headInt8 = q;
  else {
    const lin = namedLinears(model).find(([n]) => `${n}.weight` === name);
    if (!lin) throw new UserError(`tensor ${name} is int8 but is not a Linear layer's weight`);
    lin[1].int8 = q;
  }
}

function assignWeights(model: GPT, weights: Weights, source: string): void {
  const params = model.namedParameters();
  const scales = new Set<string>();
  for (const [name, p] of params) {
    const w = weights.get(name);
    if (!w) throw new UserError(`${source}: missing tensor ${name}`);
    if (w.shape.join() !== p.shape.join()) throw new UserError(`${source}: tensor ${name} has shape [${w.shape}] but the config needs [${p.shape}]`);
    if (w.data instanceof Int8Array) {
      // int8 weights: the fp32 parameter holds their dequantized values, so every path computes with the same numbers.
      const scale = weights.get(`${name}.scale`);
      if (!scale || !(scale.data instanceof Float32Array) || scale.shape.join() !== String(p.shape[0])) {
        throw new UserError(`${source}: int8 tensor ${name} needs a float tensor ${name}.scale of shape [${p.shape[0]}]`);
      }
      const q: Int8Weight = { shape: [p.shape[0]!, p.shape[1]!], data: w.data, scale: scale.data };
      attachInt8(model, name, q);
      dequantizeRows(q, p.data);
      scales.add(`${name}.scale`);
      continue;
    }
    if (!(w.data instanceof Float32Array)) throw new UserError(`${source}: tensor ${name} is not a float tensor`);
    p.data.set(w.data);
  }
  const known = new Set([...params.map(([n]) => n), ...scales]);
  const extra = [...weights.keys()].filter((n) => !known.has(n));
  if (extra.length) throw new UserError(`${source}: unexpected tensor ${extra[0]}${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''} for this config`);
}
