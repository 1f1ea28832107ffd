import { GPT } from '../models/gpt.js';
import { parseGPTConfig, type GPTConfig } from '../models/gpt_config.js';
import { useQuantizedMatrices } from '../nn/block_quantized.js';
import { withoutAllocation } from '../nn/init.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { quantizeMatrix, type QuantizedMatrix } from '../backend/quantized_matrix.js';
import { Rng } from '../util/rng.js';
import { UserError } from '../util/errors.js';
import { ggufValue, readGGUF, tensorAsQuantized, tensorToFloat32, type GGUFFile, type GGUFTensor, type GGUFTensorType, type GGUFValue } from './gguf.js';
import { tokenizerFromGGUF, tokenizerToGGUF } from './gguf_tokenizer.js';
import type { GGUFTensorSource } from './gguf_write.js';
import { f32ToF16 } from './safetensors.js';

/**
 * attn's GPT ↔ llama.cpp's "gpt2" architecture. The names (llama.cpp's
 * gguf-py constants, MODEL_TENSOR for gpt2):
 *
 *   wte                 token_embd          (also the output head: GPT-2 ties them; llama.cpp reuses token_embd)
 *   wpe                 position_embd
 *   h.N.ln_1            blk.N.attn_norm
 *   h.N.attn.c_attn     blk.N.attn_qkv      (q, k, v stacked along the outputs, as attn stores them)
 *   h.N.attn.c_proj     blk.N.attn_output
 *   h.N.ln_2            blk.N.ffn_norm
 *   h.N.mlp.c_fc        blk.N.ffn_up
 *   h.N.mlp.c_proj      blk.N.ffn_down
 *   ln_f                output_norm
 *
 * A Linear weight [out, in] in row-major order is ggml's [in, out] with rows
 * along dims[0]: the same bytes, no transpose.
 */
const BLOCK_NAMES: Record<string, string> = {
  ln_1: 'attn_norm', 'attn.c_attn': 'attn_qkv', 'attn.c_proj': 'attn_output', ln_2: 'ffn_norm', 'mlp.c_fc': 'ffn_up', 'mlp.c_proj': 'ffn_down',
};

/** attn parameter name → GGUF tensor name. */
export function ggufName(name: string): string {
  if (name.startsWith('wte.')) return name.replace('wte.', 'token_embd.');
  if (name.startsWith('wpe.')) return name.replace('wpe.', 'position_embd.');
  if (name.startsWith('ln_f.')) return name.replace('ln_f.', 'output_norm.');
  const m = /^h\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  const inner = m && BLOCK_NAMES[m[2]!];
  if (!m || !inner) throw new Error(`no GGUF name for parameter ${name}`);
  return `blk.${m[1]}.${inner}.${m[3]}`;
}

export type GGUFExportType = 'f32' | 'f16' | 'q8_0' | 'q4_0';
/** llama.cpp's general.file_type (LlamaFileType): what most tensors are. */
export const FILE_TYPE: Record<GGUFExportType, number> = { f32: 0, f16: 1, q4_0: 2, q8_0: 7 };


const u32 = (value: number): GGUFValue => ({ type: 'uint32', value });
const str = (value: string): GGUFValue => ({ type: 'string', value });

function f16Bytes(data: Float32Array): Uint8Array {
  const out = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) out[i] = f32ToF16(data[i]!);
  return new Uint8Array(out.buffer);
}

/** One tensor in the file's type: 1-D tensors and position vectors stay F32 (as llama.cpp's converter keeps them). */
export function tensorOut(name: string, shape: number[], data: Float32Array | (() => Float32Array), type: GGUFExportType, notes: string[]): GGUFTensorSource {
  const dims = [...shape].reverse();
  let t: GGUFTensorType = shape.length < 2 || name === 'position_embd.weight' ? 'f32' : type;
  if ((t === 'q8_0' || t === 'q4_0') && dims[0]! % 32 !== 0) {
    notes.push(`${name}: rows of ${dims[0]} values are not whole 32-value blocks; written as f16`);
    t = 'f16';
  }
  const encode = (v: Float32Array): Uint8Array => {
    if (t === 'f32') return new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    if (t === 'f16') return f16Bytes(v);
    return quantizeMatrix(t as 'q8_0' | 'q4_0', v, shape[0]!, shape[1]!).data;
  };
  // Values given as a function are made (and encoded) only when the file is written.
  return typeof data === 'function' ? { name, dims, type: t, data: () => encode(data()) } : { name, dims, type: t, data: encode(data) };
}

/** The metadata and tensors of a GGUF file (architecture "gpt2") for one of attn's GPT models. */
export function gpt2ToGGUF(model: GPT, tokenizer: Tokenizer | null, type: GGUFExportType): { metadata: Map<string, GGUFValue>; tensors: GGUFTensorSource[]; notes: string[] } {
  const c = model.config;
  if (c.position_encoding === 'rope') throw new UserError("this model uses RoPE; llama.cpp's gpt2 architecture has learned position vectors only, so it cannot be exported as gpt2");
  const notes: string[] = [];
  const metadata = new Map<string, GGUFValue>([
    ['general.architecture', str('gpt2')],
    ['general.name', str('attn-gpt')],
    ['general.file_type', u32(FILE_TYPE[type])],
    ['gpt2.context_length', u32(c.block_size)],
    ['gpt2.embedding_length', u32(c.n_embd)],
    ['gpt2.feed_forward_length', u32(4 * c.n_embd)],
    ['gpt2.block_count', u32(c.n_layer)],
    ['gpt2.attention.head_count', u32(c.n_head)],
    ['gpt2.attention.layer_norm_epsilon', { type: 'float32', value: c.layer_norm_epsilon }],
  ]);
  if (type === 'q8_0' || type === 'q4_0') metadata.set('general.quantization_version', u32(2));
  const tok = tokenizerToGGUF(tokenizer, c.vocab_size);
  for (const [k, v] of tok.metadata) metadata.set(k, v);
  notes.push(...tok.notes);

  const tensors: GGUFTensorSource[] = [];
  const params = new Map(model.namedParameters());
  for (const [name, p] of params) {
    tensors.push(tensorOut(ggufName(name), p.shape, p.data, type, notes));
    // llama.cpp's gpt2 requires every bias; a model trained without them (nanoGPT's recipe) gets zeros, which compute the same.
    const bias = name.replace(/\.weight$/, '.bias');
    if (name.endsWith('.weight') && !name.startsWith('wte') && !name.startsWith('wpe') && !params.has(bias)) {
      tensors.push(tensorOut(ggufName(bias), [p.shape[0]!], new Float32Array(p.shape[0]!), type, notes));
    }
  }
  return { metadata, tensors, notes };
}

export interface LoadedGGUFModel {
  model: GPT;
  tokenizer: Tokenizer | null;
  config: GPTConfig;
  /**
   * The block-quantized weight matrices as the file stores them (views into
   * the file's buffer), by attn parameter name. The model's layers hold them
   * as they are (BlockQuantizedLinear, QuantizedEmbedding: nn/block_quantized.ts);
   * no fp32 copy exists until `dequantize(model)`.
   */
  quantized: Map<string, QuantizedMatrix>;
}

/** The shortest decimal that is the same float32 (the file's 9.99999974e-6 is the 1e-5 the model was trained with). */
export function shortestFloat32(v: number): number {
  for (let p = 1; p < 9; p++) {
    const d = Number(v.toPrecision(p));
    if (Math.fround(d) === v) return d;
  }
  return v;
}

/** Same values: the same bytes when the types agree, else the same dequantized floats. */
function sameTensor(a: GGUFTensor, b: GGUFTensor): boolean {
  if (a.type === b.type) return a.bytes.length === b.bytes.length && a.bytes.every((v, i) => v === b.bytes[i]);
  const x = tensorToFloat32(a);
  const y = tensorToFloat32(b);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

function need(file: GGUFFile, key: string, source: string): number {
  const v = ggufValue(file, key);
  if (typeof v !== 'number' && typeof v !== 'bigint') throw new UserError(`${source}: metadata ${key} is missing or not a number`);
  return Number(v);
}

/**
 * Load a GGUF file of architecture "gpt2" as attn's GPT. F32, F16 and BF16
 * tensors are converted to fp32; quantized ones are kept as stored (returned
 * in `quantized`) and dequantized into the fp32 parameters.
 */
export function loadGGUFGPT2(path: string, file: GGUFFile = readGGUF(path)): LoadedGGUFModel {
  const arch = ggufValue(file, 'general.architecture');
  if (arch !== 'gpt2') throw new UserError(`${path}: GGUF architecture "${String(arch)}" is not supported here (attn loads "gpt2" GGUF files)`);
  const n_embd = need(file, 'gpt2.embedding_length', path);
  const ff = need(file, 'gpt2.feed_forward_length', path);
  if (ff !== 4 * n_embd) throw new UserError(`${path}: gpt2.feed_forward_length ${ff} is not 4 × embedding_length (${4 * n_embd}), which attn's GPT assumes`);
  const emb = file.tensors.get('token_embd.weight');
  if (!emb) throw new UserError(`${path}: missing tensor token_embd.weight`);
  let config: GPTConfig;
  try {
    config = parseGPTConfig({
      n_layer: need(file, 'gpt2.block_count', path),
      n_head: need(file, 'gpt2.attention.head_count', path),
      n_embd,
      block_size: need(file, 'gpt2.context_length', path),
      vocab_size: emb.dims[1] ?? 0,
      layer_norm_epsilon: ggufValue(file, 'gpt2.attention.layer_norm_epsilon') === undefined ? 1e-5 : shortestFloat32(need(file, 'gpt2.attention.layer_norm_epsilon', path)),
      bias: true,
    }, path);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  const model = withoutAllocation(() => new GPT(config, new Rng(0))); // every weight is assigned or replaced below
  const quantized = new Map<string, QuantizedMatrix>();
  const used = new Set<string>();
  for (const [name, p] of model.namedParameters()) {
    const gname = ggufName(name);
    const t = file.tensors.get(gname);
    if (!t) throw new UserError(`${path}: missing tensor ${gname}`);
    const want = [...p.shape].reverse();
    if (t.dims.join() !== want.join()) throw new UserError(`${path}: tensor ${gname} has dims [${t.dims}] but the config needs [${want}]`);
    if (t.type !== 'f32' && t.type !== 'f16' && t.type !== 'bf16') quantized.set(name, tensorAsQuantized(t));
    else p.data = tensorToFloat32(t);
    used.add(gname);
  }
  // An untied output head would be ignored silently: refuse it unless it equals the embedding (llama.cpp writes it for tied models too).
  const extra = [...file.tensors.keys()].filter((n) => !used.has(n) && n !== 'output.weight');
  if (extra.length) throw new UserError(`${path}: unexpected tensor ${extra[0]}${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''} for a gpt2 model`);
  const out = file.tensors.get('output.weight');
  if (out && !sameTensor(out, emb)) throw new UserError(`${path}: output.weight differs from token_embd.weight; attn's GPT ties its output head to the embedding`);
  useQuantizedMatrices(model, quantized);
  model.eval();
  const tokenizer = tokenizerFromGGUF(file, path);
  if (tokenizer && tokenizer.vocabSize > config.vocab_size) throw new UserError(`${path}: tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${config.vocab_size}`);
  return { model, tokenizer, config, quantized };
}
