import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { GPT } from '../models/gpt.js';
import { parseGPTConfig, type GPTConfig } from '../models/gpt_config.js';
import { HFTokenizer, loadDirTokenizer, loadTokenizerFile, type Tokenizer } from '../tokenizers/index.js';
import { Rng } from '../util/rng.js';
import { Linear } from '../nn/linear.js';
import { dequantizeRows, isQuantized, QuantizedLinear, type QuantizedWeight } from '../nn/quantized_linear.js';
import { TiedLinear } from '../nn/tied_linear.js';
import { hasBlockQuantized } from '../nn/block_quantized.js';
import { Tensor } from '../tensor/tensor.js';
import { recoverDir } from './atomic.js';
import { UserError } from '../util/errors.js';
import { checkConfigSizes } from './config_limits.js';
import { OTHER_MODEL_KINDS } from './model_kinds.js';
import { configFromHF, weightsFromHF } from './hf_gpt2.js';
import { loadHFLlama } from './hf_llama.js';
import { DecoderLM, type CausalLM } from '../models/causal_lm.js';
import { Llama } from '../models/llama.js';
import { hfLlamaFamily, parseLlamaConfig, type LlamaConfig } from '../models/llama_config.js';
import { readSafetensors, serializeSafetensors, SafetensorsError, type TensorEntry } from './safetensors.js';
import { withoutAllocation, withoutInit } from '../nn/init.js';
import type { QuantizedMatrix } from '../backend/quantized_matrix.js';
import { loadGGUFGPT2 } from './gguf_gpt2.js';
import { ggufValue, readGGUF } from './gguf.js';
import { LLAMA_GGUF_ARCHITECTURES, loadGGUFLlama } from './gguf_llama.js';

export const MODEL_FORMAT = 'attn';
/** config.json's model_type for a Llama-family model attn trained. */
export const LLAMA_MODEL_TYPE = 'attn-llama';
/** config.json's "quantization" for int8 weight-only models (see nn/quantized_linear.ts). */
export const INT8_QUANTIZATION = { method: 'int8-weight-only', granularity: 'per-output-channel', activations: 'fp32' };
/** Written by `attn export --to hf` when the tokenizer has no GPT-2 file form (char, word, non-GPT-2 BPE). */
export const ATTN_TOKENIZER_FILE = 'attn_tokenizer.json';

type Weights = Map<string, { shape: number[]; data: Float32Array | Int32Array | BigInt64Array | Int8Array }>;

export interface LoadedGPT {
  model: GPT;
  tokenizer: Tokenizer | null;
  config: GPTConfig;
  /** Where the weights came from: our own checkpoint, a Hugging Face GPT-2 directory or a GGUF file. */
  source: 'attn' | 'hf-gpt2' | 'gguf';
  /** A GGUF file's block-quantized matrices as stored, by parameter name (the model's layers multiply them as they are: nn/block_quantized.ts). */
  quantized?: Map<string, QuantizedMatrix>;
}

/** A Hugging Face Llama, Qwen2 or Mistral directory (io/hf_llama.ts), or one attn trained (`attn train --arch llama`). */
export interface LoadedLlama {
  model: Llama;
  tokenizer: Tokenizer | null;
  config: LlamaConfig;
  source: 'hf-llama' | 'attn' | 'gguf';
  /** A GGUF file's block-quantized matrices as stored (Hugging Face row order), by parameter name (the parameters hold their dequantized values). */
  quantized?: Map<string, QuantizedMatrix>;
}

export type LoadedModel = LoadedGPT | LoadedLlama;

function readJSON(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    // One line: Node's SyntaxError quotes the text around the fault, newlines and all.
    throw new UserError(`${path}: ${e instanceof SyntaxError ? 'invalid JSON: ' : ''}${(e as Error).message.replace(/\s*\n\s*/g, ' ')}`);
  }
}

/**
 * The files that describe a model, as bytes/strings ready for writeDirAtomic.
 * A quantized model's QuantizedLinears are saved as int8 `NAME.weight` with
 * fp32 `NAME.weight.scale` (and `NAME.bias`); its tied head as the int8
 * embedding table it shares (`wte.weight`, `model.embed_tokens.weight`),
 * which the embedding lookups dequantize on loading. A Hugging Face
 * tokenizer keeps its tokenizer.json and its tokenizer_config.json (chat
 * template, bos/eos, add_bos_token), so a fine-tuned or quantized copy of
 * a chat model still chats in its own format.
 */
export function modelFiles(model: CausalLM, tokenizer: Tokenizer | null): Record<string, Uint8Array | string> {
  if (hasBlockQuantized(model)) throw new UserError('this model holds GGUF block-quantized matrices, which an attn directory does not store: dequantize it first (attn export does)');
  const quantized = isQuantized(model);
  const config = { format: MODEL_FORMAT, model_type: model instanceof Llama ? LLAMA_MODEL_TYPE : 'attn-gpt', ...model.config, ...(quantized ? { quantization: INT8_QUANTIZATION } : {}) };
  const tensors = new Map<string, TensorEntry>();
  const int8 = (name: string, q: QuantizedWeight): void => {
    tensors.set(name, { dtype: 'I8', shape: q.shape, data: q.data });
    tensors.set(`${name}.scale`, { dtype: 'F32', shape: [q.shape[0]], data: q.scale });
  };
  const head = model instanceof DecoderLM ? model.lm_head : null;
  const tiedTable = head instanceof QuantizedLinear && head.tiedHead ? head.tiedHead().weight : null;
  for (const [n, p] of model.namedParameters()) {
    if (p === tiedTable) int8(n, (head as QuantizedLinear).weight);
    else tensors.set(n, { dtype: 'F32', shape: p.shape, data: p.data });
  }
  for (const [name, layer] of model.namedModules()) {
    if (!(layer instanceof QuantizedLinear) || layer.tiedHead) continue;
    int8(`${name}.weight`, layer.weight);
    if (layer.bias) tensors.set(`${name}.bias`, { dtype: 'F32', shape: layer.bias.shape, data: layer.bias.data });
  }
  const files: Record<string, Uint8Array | string> = {
    'config.json': JSON.stringify(config, null, 2) + '\n',
    'model.safetensors': serializeSafetensors(tensors, { format: MODEL_FORMAT }),
  };
  if (tokenizer) files['tokenizer.json'] = JSON.stringify(tokenizer.toJSON()) + '\n';
  if (tokenizer instanceof HFTokenizer && Object.keys(tokenizer.config).length > 0) files['tokenizer_config.json'] = JSON.stringify(tokenizer.config, null, 2) + '\n';
  return files;
}

/**
 * Finish an interrupted save of `dir` (recoverDir), then check that it is a
 * directory: one clear UserError when it is missing or a file.
 */
export function openModelDir(dir: string): void {
  recoverDir(dir);
  if (!existsSync(dir)) throw new UserError(`model directory ${dir} does not exist`);
  if (!statSync(dir).isDirectory()) throw new UserError(`${dir} is a file, not a model directory`);
}

/** Whether a model path names a GGUF file (FILE.gguf, a file), which loads like a model directory. */
export function isGGUFPath(path: string): boolean {
  return /\.gguf$/i.test(path) && existsSync(path) && statSync(path).isFile();
}

/**
 * Load a model directory: ours (config.json with "format": "attn") or a
 * Hugging Face GPT-2 one (config.json with "model_type": "gpt2", Conv1D
 * weights), or a GGUF file (FILE.gguf, architecture "gpt2": io/gguf_gpt2.ts).
 * Any missing, extra or mis-shaped tensor is an error.
 */
export function loadModel(dir: string): LoadedModel {
  if (isGGUFPath(dir)) return loadGGUFModel(dir);
  openModelDir(dir);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new UserError(`${dir} has no config.json: not a model directory`);
  const raw = readJSON(configPath) as Record<string, unknown>;
  if (typeof raw !== 'object' || raw === null) throw new UserError(`${configPath}: expected a JSON object`);
  const other = OTHER_MODEL_KINDS[String(raw.model_type)];
  if (other) throw new UserError(`${dir} holds ${other.what}, not a GPT language model: use \`${other.command}\``);
  if (hfLlamaFamily(raw)) {
    const { model, config } = loadHFLlama(dir, raw, configPath);
    return { model, tokenizer: dirTokenizer(dir, config.vocab_size), config, source: 'hf-llama' };
  }
  checkConfigSizes(raw, configPath, join(dir, 'model.safetensors'));
  const weightsPath = join(dir, 'model.safetensors');
  if (!existsSync(weightsPath)) throw new UserError(`${dir} has no model.safetensors`);
  let tensors: Map<string, TensorEntry>;
  try {
    tensors = readSafetensors(weightsPath).tensors;
  } catch (e) {
    if (e instanceof SafetensorsError) throw new UserError(e.message);
    throw e;
  }

  if (raw.format === MODEL_FORMAT && raw.model_type === LLAMA_MODEL_TYPE) {
    let config: LlamaConfig;
    try {
      config = parseLlamaConfig(raw, configPath);
    } catch (e) {
      throw new UserError((e as Error).message);
    }
    const model = withoutAllocation(() => new Llama(config, new Rng(0)));
    assignWeights(model, tensors, weightsPath);
    model.eval();
    return { model, tokenizer: dirTokenizer(dir, config.vocab_size), config, source: 'attn' };
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
    throw new UserError(`${configPath}: architecture "${String(arch)}" is not supported (attn loads its own GPT checkpoints and Hugging Face gpt2, LlamaForCausalLM, Qwen2ForCausalLM and MistralForCausalLM models)`);
  }

  // Parameters without values (nothing allocated): each gets the file's array, or its Linear is
  // replaced by a QuantizedLinear, so an int8 model never holds fp32 copies of its matrices.
  const model = withoutAllocation(() => new GPT(config, new Rng(0)));
  assignWeights(model, weights, weightsPath);
  model.eval();
  return { model, tokenizer: dirTokenizer(dir, config.vocab_size), config, source };
}

/** A GGUF file, by its general.architecture: gpt2 (io/gguf_gpt2.ts), llama or qwen2 (io/gguf_llama.ts). */
function loadGGUFModel(path: string): LoadedModel {
  const file = readGGUF(path);
  const arch = ggufValue(file, 'general.architecture');
  if (arch === 'gpt2') {
    const g = loadGGUFGPT2(path, file);
    return { model: g.model, tokenizer: g.tokenizer, config: g.config, source: 'gguf', quantized: g.quantized };
  }
  if ((LLAMA_GGUF_ARCHITECTURES as readonly unknown[]).includes(arch)) {
    const g = loadGGUFLlama(path, file, { inPlace: true }); // the file was read for this load alone
    return { model: g.model, tokenizer: g.tokenizer, config: g.config, source: 'gguf', quantized: g.quantized };
  }
  throw new UserError(`${path}: GGUF architecture "${String(arch)}" is not supported (attn loads ${['gpt2', ...LLAMA_GGUF_ARCHITECTURES].join(', ')})`);
}

/** loadModel for the commands that work on GPTs only so far (export, bench's recipe): any other family is a UserError naming the command. */
export function loadGPT(dir: string, command = 'this command'): LoadedGPT {
  const loaded = loadModel(dir);
  if (!(loaded.model instanceof GPT)) throw new UserError(`${dir} holds a Llama-family model, which ${command} does not support yet (attn sample, chat, serve, eval, quantize, train --init and npm run reference do)`);
  return loaded as LoadedGPT;
}

/** Ours saves tokenizer.json; a Hugging Face directory has tokenizer.json or vocab.json + merges.txt. */
function dirTokenizer(dir: string, vocabSize: number): Tokenizer | null {
  let tokenizer = loadDirTokenizer(dir);
  if (!tokenizer && existsSync(join(dir, ATTN_TOKENIZER_FILE))) tokenizer = loadTokenizerFile(join(dir, ATTN_TOKENIZER_FILE));
  if (tokenizer && tokenizer.vocabSize > vocabSize) {
    throw new UserError(`${dir}: tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${vocabSize}`);
  }
  return tokenizer;
}

/** The int8 weight stored as `name` (with its `name.scale`), checked against the shape the model needs. */
function int8Weight(weights: Weights, name: string, shape: number[], source: string): QuantizedWeight {
  const w = weights.get(name)!;
  if (w.shape.join() !== shape.join()) throw new UserError(`${source}: tensor ${name} has shape [${w.shape}] but the config needs [${shape}]`);
  const scale = weights.get(`${name}.scale`);
  if (!scale || !(scale.data instanceof Float32Array) || scale.shape.join() !== String(shape[0])) {
    throw new UserError(`${source}: int8 tensor ${name} needs a float tensor ${name}.scale of shape [${shape[0]}]`);
  }
  return { format: 'int8-rows', shape: [shape[0]!, shape[1]!], data: w.data as Int8Array, scale: scale.data };
}

/**
 * Give every parameter its tensor from the file. An int8 matrix replaces its
 * Linear with a QuantizedLinear (keeping the fp32 bias); int8 `wte.weight` is
 * the quantized tied head, and the embedding lookups get its dequantized values.
 */
function assignWeights(model: GPT | Llama, weights: Weights, source: string): void {
  const used = new Set<string>();
  const take = (name: string) => (used.add(name), weights.get(name));
  const linears = new Map(model.namedModules().filter((e): e is [string, Linear] => e[1] instanceof Linear));
  const params = new Map(model.namedParameters());
  const tied = model.lm_head instanceof TiedLinear ? model.lm_head : null;
  for (const [name, w] of weights) {
    if (!(w.data instanceof Int8Array)) continue;
    const table = params.get(name);
    if (tied && table && table === tied.weight) {
      // The embedding table the head is tied to: the head multiplies by the int8 rows, lookups read them dequantized.
      const q = int8Weight(weights, name, table.shape, source);
      table.data = dequantizeRows(q);
      model.lm_head = new QuantizedLinear(q, null, tied);
    } else {
      const layer = name.endsWith('.weight') ? name.slice(0, -'.weight'.length) : '';
      const lin = linears.get(layer);
      if (!lin) throw new UserError(`${source}: tensor ${name} is int8 but is not a Linear layer's weight`);
      const q = int8Weight(weights, name, lin.weight.shape, source);
      let bias: Tensor | null = null;
      if (lin.bias) {
        const b = take(`${layer}.bias`);
        if (!b) throw new UserError(`${source}: missing tensor ${layer}.bias`);
        if (!(b.data instanceof Float32Array) || b.shape.join() !== lin.bias.shape.join()) throw new UserError(`${source}: tensor ${layer}.bias must be a float tensor of shape [${lin.bias.shape}]`);
        bias = new Tensor(b.data, lin.bias.shape);
      }
      model.replaceModule(layer, new QuantizedLinear(q, bias));
    }
    used.add(name).add(`${name}.scale`);
  }
  for (const [name, p] of model.namedParameters()) {
    if (used.has(name)) continue;
    const w = take(name);
    if (!w) throw new UserError(`${source}: missing tensor ${name}`);
    if (w.shape.join() !== p.shape.join()) throw new UserError(`${source}: tensor ${name} has shape [${w.shape}] but the config needs [${p.shape}]`);
    if (!(w.data instanceof Float32Array)) throw new UserError(`${source}: tensor ${name} is not a float tensor`);
    p.data = w.data; // the array read from the file becomes the parameter's (no second copy)
  }
  const extra = [...weights.keys()].filter((n) => !used.has(n));
  if (extra.length) throw new UserError(`${source}: unexpected tensor ${extra[0]}${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''} for this config`);
}
