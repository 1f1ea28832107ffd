import { dequantizeMatrix, quantRowBytes, type QuantizedMatrix } from '../backend/quantized_matrix.js';
import { Llama } from '../models/llama.js';
import { parseLlamaConfig, type LlamaConfig } from '../models/llama_config.js';
import { useQuantizedMatrices } from '../nn/block_quantized.js';
import { withoutAllocation } from '../nn/init.js';
import { ropeFrequencies, type RopeScaling } from '../tensor/ops/rope.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { ggufValue, readGGUF, tensorAsQuantized, tensorToFloat32, type GGUFFile, type GGUFValue } from './gguf.js';
import { FILE_TYPE, shortestFloat32, tensorOut, type GGUFExportType } from './gguf_gpt2.js';
import { tokenizerFromGGUF, tokenizerToGGUF } from './gguf_tokenizer.js';
import type { GGUFTensorSource } from './gguf_write.js';

/**
 * attn's Llama ↔ llama.cpp's "llama" and "qwen2" architectures. attn names
 * its parameters as Hugging Face checkpoints do; GGUF (llama.cpp's gguf-py
 * constants) names them:
 *
 *   model.embed_tokens                  token_embd
 *   model.layers.N.input_layernorm      blk.N.attn_norm
 *   model.layers.N.self_attn.q_proj     blk.N.attn_q        (+ .bias: Qwen2)
 *   model.layers.N.self_attn.k_proj     blk.N.attn_k        (+ .bias: Qwen2)
 *   model.layers.N.self_attn.v_proj     blk.N.attn_v        (+ .bias: Qwen2)
 *   model.layers.N.self_attn.o_proj     blk.N.attn_output
 *   model.layers.N.post_attention_layernorm  blk.N.ffn_norm
 *   model.layers.N.mlp.gate_proj        blk.N.ffn_gate
 *   model.layers.N.mlp.up_proj          blk.N.ffn_up
 *   model.layers.N.mlp.down_proj        blk.N.ffn_down
 *   model.norm                          output_norm
 *   lm_head                             output              (absent: tied to token_embd)
 *
 * A Linear weight [out, in] is ggml's [in, out]: the same bytes.
 *
 * One difference is not a name. Hugging Face rotates channel i of a head with
 * channel i + D/2 (rotate_half); llama.cpp's "llama" architecture rotates
 * neighbours 2i and 2i + 1 (the RoPE paper's layout). llama.cpp's converter
 * therefore reorders the rows of Q and K inside each head so that HF's row i
 * lands at 2i and row i + D/2 at 2i + 1: the same pairs, now neighbours, so
 * the same rotation happens. Reading undoes it; writing does it. "qwen2" uses
 * rotate_half in llama.cpp too (NEOX), and its rows are left as they are.
 */

export const LLAMA_GGUF_ARCHITECTURES = ['llama', 'qwen2'] as const;
export type LlamaGGUFArchitecture = (typeof LLAMA_GGUF_ARCHITECTURES)[number];

const LAYER_NAMES: Record<string, string> = {
  input_layernorm: 'attn_norm',
  'self_attn.q_proj': 'attn_q',
  'self_attn.k_proj': 'attn_k',
  'self_attn.v_proj': 'attn_v',
  'self_attn.o_proj': 'attn_output',
  post_attention_layernorm: 'ffn_norm',
  'mlp.gate_proj': 'ffn_gate',
  'mlp.up_proj': 'ffn_up',
  'mlp.down_proj': 'ffn_down',
};

/** attn (Hugging Face) parameter name → GGUF tensor name. */
export function llamaGGUFName(name: string): string {
  if (name === 'model.embed_tokens.weight') return 'token_embd.weight';
  if (name === 'model.norm.weight') return 'output_norm.weight';
  if (name === 'lm_head.weight') return 'output.weight';
  const m = /^model\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(name);
  const inner = m && LAYER_NAMES[m[2]!];
  if (!m || !inner) throw new Error(`no GGUF name for parameter ${name}`);
  return `blk.${m[1]}.${inner}.${m[3]}`;
}

/** Q and K projections (weights and biases): the rows the rotary layouts disagree on. */
const isRotated = (name: string): boolean => /\.self_attn\.[qk]_proj\./.test(name);

/**
 * Where row r of a Hugging Face Q or K projection sits in llama.cpp's
 * "llama" layout: inside its head, row i < D/2 goes to 2i and row i + D/2 to
 * 2i + 1 (llama.cpp's convert_hf_to_gguf `permute`).
 */
export function ggufRopeRow(r: number, headDim: number): number {
  const head = Math.floor(r / headDim);
  const i = r % headDim;
  const half = headDim / 2;
  return head * headDim + (i < half ? 2 * i : 2 * (i - half) + 1);
}

/**
 * Reorder whole rows (rowLength values or bytes each) between Hugging Face's
 * order and llama.cpp's. Quantized rows move as their bytes: a block never
 * spans two rows.
 */
export function permuteRopeRows<T extends Float32Array | Uint8Array>(data: T, rowLength: number, headDim: number, direction: 'to-gguf' | 'from-gguf'): T {
  const out = (data instanceof Float32Array ? new Float32Array(data.length) : new Uint8Array(data.length)) as T;
  const rows = data.length / rowLength;
  for (let r = 0; r < rows; r++) {
    const g = ggufRopeRow(r, headDim);
    const [from, to] = direction === 'to-gguf' ? [r, g] : [g, r];
    out.set(data.subarray(from * rowLength, (from + 1) * rowLength), to * rowLength);
  }
  return out;
}

/**
 * permuteRopeRows 'from-gguf' where the rows lie, with one row of scratch:
 * each cycle of the permutation is followed, every row moved once. (A
 * reordered copy of every Q and K matrix would leave the originals as
 * garbage, ~60 MB of a 1B Q4_0 model, at the moment memory peaks.)
 */
export function permuteRopeRowsInPlace(data: Uint8Array, rowLength: number, headDim: number): void {
  const rows = data.length / rowLength;
  const moved = new Uint8Array(rows);
  const saved = new Uint8Array(rowLength);
  for (let start = 0; start < rows; start++) {
    if (moved[start]) continue;
    saved.set(data.subarray(start * rowLength, (start + 1) * rowLength));
    // Row r takes file row ggufRopeRow(r): that row is the next one overwritten, so it still holds its old bytes.
    for (let r = start; ; ) {
      const from = ggufRopeRow(r, headDim);
      moved[r] = 1;
      if (from === start) {
        data.set(saved, r * rowLength);
        break;
      }
      data.copyWithin(r * rowLength, from * rowLength, (from + 1) * rowLength);
      r = from;
    }
  }
}

/** The GGUF architecture for a config: Qwen2's shape (q/k/v biases only) is "qwen2", anything else "llama". */
export function ggufArchitecture(c: LlamaConfig): LlamaGGUFArchitecture {
  return c.attention_bias && !c.attention_out_bias && !c.mlp_bias ? 'qwen2' : 'llama';
}

/** llama.cpp's per-frequency divisors (rope_freqs.weight) for a rope_scaling it has no name for (llama3). */
function ropeFreqFactors(c: LlamaConfig): Float32Array {
  const plain = ropeFrequencies(c.head_dim, c.rope_theta, null).invFreq;
  const scaled = ropeFrequencies(c.head_dim, c.rope_theta, c.rope_scaling).invFreq;
  return Float32Array.from(plain, (f, i) => f / scaled[i]!);
}

const u32 = (value: number): GGUFValue => ({ type: 'uint32', value });
const f32 = (value: number): GGUFValue => ({ type: 'float32', value });
const str = (value: string): GGUFValue => ({ type: 'string', value });

/** The metadata and tensors of a GGUF file for one of attn's Llama-family models (with its tokenizer and chat template). */
/**
 * `values`, when given, supplies each parameter's values instead of the
 * model (which may then have none: built withoutAllocation), called only as
 * writeGGUF writes that tensor. The bench writes a random 1B model this way
 * without ever holding its 4.4 GB of fp32 values.
 */
export function llamaToGGUF(
  model: Llama, tokenizer: Tokenizer | null, type: GGUFExportType, name = 'attn-llama', values?: (parameter: string, shape: number[]) => Float32Array,
): { metadata: Map<string, GGUFValue>; tensors: GGUFTensorSource[]; notes: string[] } {
  const c = model.config;
  const arch = ggufArchitecture(c);
  const key = (k: string): string => `${arch}.${k}`;
  const notes: string[] = [];
  const metadata = new Map<string, GGUFValue>([
    ['general.architecture', str(arch)],
    ['general.name', str(name)],
    ['general.file_type', u32(FILE_TYPE[type])],
    [key('vocab_size'), u32(c.vocab_size)],
    [key('context_length'), u32(c.block_size)],
    [key('embedding_length'), u32(c.n_embd)],
    [key('feed_forward_length'), u32(c.intermediate_size)],
    [key('block_count'), u32(c.n_layer)],
    [key('attention.head_count'), u32(c.n_head)],
    [key('attention.head_count_kv'), u32(c.n_kv_head)],
    [key('attention.layer_norm_rms_epsilon'), f32(c.rms_norm_eps)],
    [key('rope.freq_base'), f32(c.rope_theta)],
    [key('rope.dimension_count'), u32(c.head_dim)],
  ]);
  if (c.head_dim * c.n_head !== c.n_embd) {
    metadata.set(key('attention.key_length'), u32(c.head_dim));
    metadata.set(key('attention.value_length'), u32(c.head_dim));
  }
  if (type === 'q8_0' || type === 'q4_0') metadata.set('general.quantization_version', u32(2));
  const tensors: GGUFTensorSource[] = [];
  const s = c.rope_scaling;
  if (s?.rope_type === 'linear') {
    metadata.set(key('rope.scaling.type'), str('linear'));
    metadata.set(key('rope.scaling.factor'), f32(s.factor));
  } else if (s?.rope_type === 'yarn') {
    metadata.set(key('rope.scaling.type'), str('yarn'));
    metadata.set(key('rope.scaling.factor'), f32(s.factor));
    const old = s.original_max_position_embeddings ?? s.max_position_embeddings;
    if (old) metadata.set(key('rope.scaling.original_context_length'), u32(old));
  } else if (s?.rope_type === 'llama3') {
    // llama.cpp has no name for Llama 3's recipe: its converter writes the divisor of each frequency instead.
    const factors = ropeFreqFactors(c);
    tensors.push({ name: 'rope_freqs.weight', dims: [factors.length], type: 'f32', data: new Uint8Array(factors.buffer) });
  } else if (s) throw new UserError(`rope_scaling "${s.rope_type}" has no GGUF form (llama.cpp knows linear, yarn and Llama 3's frequency factors)`);

  const tok = tokenizerToGGUF(tokenizer, c.vocab_size);
  for (const [k, v] of tok.metadata) metadata.set(k, v);
  notes.push(...tok.notes);

  for (const [pname, p] of model.namedParameters()) {
    const inGGUFOrder = (data: Float32Array) => (arch === 'llama' && isRotated(pname) ? permuteRopeRows(data, p.shape[1] ?? 1, c.head_dim, 'to-gguf') : data);
    const data = values ? () => inGGUFOrder(values(pname, p.shape)) : inGGUFOrder(p.data as Float32Array);
    tensors.push(tensorOut(llamaGGUFName(pname), p.shape, data, type, notes));
  }
  return { metadata, tensors, notes };
}

// --- reading ---

export interface LoadedGGUFLlama {
  model: Llama;
  tokenizer: Tokenizer | null;
  config: LlamaConfig;
  architecture: LlamaGGUFArchitecture;
  /**
   * The block-quantized matrices by attn parameter name, in Hugging Face's
   * row order (Q and K of a "llama" file reordered: a copy; the others are
   * views into the file's buffer). The model's layers hold them as they are
   * (nn/block_quantized.ts); no fp32 copy exists until `dequantize(model)`.
   */
  quantized: Map<string, QuantizedMatrix>;
}

/**
 * Llama 3's rope_scaling from llama.cpp's per-frequency divisors. Between the
 * kept (divisor 1) and the fully stretched (divisor = factor) frequencies the
 * recipe blends linearly in old_context / wavelength: 1/divisor = (1 − s)/factor + s
 * with s = a/wavelength − b. a and b give old_context, low_freq_factor and
 * high_freq_factor up to one common scale, fixed by low_freq_factor = 1 (as
 * every Llama 3 has). The result is checked against the file's divisors.
 */
function llama3FromFactors(factors: Float32Array, headDim: number, base: number, source: string): RopeScaling | null {
  const plain = ropeFrequencies(headDim, base, null).invFreq;
  if (factors.length !== plain.length) throw new UserError(`${source}: rope_freqs.weight has ${factors.length} values, not head_dim / 2 = ${plain.length}`);
  const factor = Math.max(...factors);
  if (factor <= 1 + 1e-6) return null;
  const wavelength = Array.from(plain, (f) => (2 * Math.PI) / f);
  const near = (x: number, y: number): boolean => Math.abs(x - y) <= 1e-5 * y;
  const blend = [...factors.keys()].filter((i) => !near(factors[i]!, 1) && !near(factors[i]!, factor));
  let scaling: RopeScaling;
  if (blend.length >= 2) {
    // Least squares of s against 1/wavelength over the blended frequencies.
    const xs = blend.map((i) => 1 / wavelength[i]!);
    const ys = blend.map((i) => (1 / factors[i]! - 1 / factor) / (1 - 1 / factor));
    const mx = xs.reduce((p, x) => p + x, 0) / xs.length;
    const my = ys.reduce((p, y) => p + y, 0) / ys.length;
    const a = xs.reduce((p, x, k) => p + (x - mx) * (ys[k]! - my), 0) / xs.reduce((p, x) => p + (x - mx) ** 2, 0);
    const b = a * mx - my;
    scaling = { rope_type: 'llama3', factor, original_max_position_embeddings: Math.round(a / b), low_freq_factor: 1, high_freq_factor: 1 + 1 / b };
  } else {
    // One blended frequency or none: any boundaries between the last kept and the first
    // stretched wavelength that give it its divisor reproduce the file (checked below).
    const kept = [...factors.keys()].filter((i) => near(factors[i]!, 1)).map((i) => wavelength[i]!);
    const stretched = [...factors.keys()].filter((i) => near(factors[i]!, factor)).map((i) => wavelength[i]!);
    const wk = Math.max(1e-9, ...kept);
    const ws = Math.min(...stretched);
    if (blend.length === 1) {
      const w0 = wavelength[blend[0]!]!;
      const s0 = (1 / factors[blend[0]!]! - 1 / factor) / (1 - 1 / factor);
      // With low_freq_factor 1, s = (old/w − 1)/(high − 1); put the kept boundary old/high halfway
      // between the last kept wavelength and w0, which fixes old (rounded: it is a context length).
      const r = (wk + w0) / 2 / w0;
      const eps = r > s0 ? (1 - r) / (r / s0 - 1) : 1;
      const old = Math.round(Math.min(w0 * (1 + eps), Number.isFinite(ws) ? (w0 + ws) / 2 : Infinity));
      scaling = { rope_type: 'llama3', factor, original_max_position_embeddings: old, low_freq_factor: 1, high_freq_factor: 1 + (old / w0 - 1) / s0 };
    } else {
      const old = Math.floor(Number.isFinite(ws) ? ws / 1.001 : 2 * wk);
      scaling = { rope_type: 'llama3', factor, original_max_position_embeddings: old, low_freq_factor: 1, high_freq_factor: Math.max(1.0001, old / wk / 1.001) };
    }
  }
  const again = ropeFrequencies(headDim, base, scaling).invFreq;
  if (!plain.every((f, i) => Math.abs(f / again[i]! - factors[i]!) <= 1e-4 * factors[i]!)) {
    throw new UserError(`${source}: rope_freqs.weight does not follow Llama 3's rope scaling, the only per-frequency recipe attn reads`);
  }
  return scaling;
}

/**
 * Load a GGUF file of architecture "llama" or "qwen2" as attn's Llama. F32,
 * F16 and BF16 tensors become fp32; quantized ones are kept as stored
 * (returned in `quantized`) and multiplied as they are.
 *
 * `inPlace`: the caller is done with `file` (it read the file for this load
 * alone), so the Q and K rows of a "llama" file are reordered where they lie
 * instead of into copies. A copy would hold them twice: ~60 MB of a 1B
 * Q4_0 model's 591, a tenth of the memory the goal allows beside the file.
 */
export function loadGGUFLlama(path: string, file: GGUFFile = readGGUF(path), o: { inPlace?: boolean } = {}): LoadedGGUFLlama {
  const arch = ggufValue(file, 'general.architecture');
  if (!(LLAMA_GGUF_ARCHITECTURES as readonly unknown[]).includes(arch)) throw new UserError(`${path}: GGUF architecture "${String(arch)}" is not a Llama-family one (${LLAMA_GGUF_ARCHITECTURES.join(', ')})`);
  const architecture = arch as LlamaGGUFArchitecture;
  const num = (k: string, fallback?: number): number => {
    const v = ggufValue(file, `${architecture}.${k}`);
    if (v === undefined && fallback !== undefined) return fallback;
    if (typeof v !== 'number' && typeof v !== 'bigint') throw new UserError(`${path}: metadata ${architecture}.${k} is missing or not a number`);
    return Number(v);
  };
  const emb = file.tensors.get('token_embd.weight');
  if (!emb) throw new UserError(`${path}: missing tensor token_embd.weight`);
  const n_embd = num('embedding_length');
  const n_head = num('attention.head_count');
  const head_dim = num('attention.key_length', n_embd / n_head);
  if (num('attention.value_length', head_dim) !== head_dim) throw new UserError(`${path}: attention.key_length and value_length differ, which attn's attention does not support`);
  if (num('rope.dimension_count', head_dim) !== head_dim) throw new UserError(`${path}: rope.dimension_count ${num('rope.dimension_count')} is not the head size ${head_dim} (partial rotary embeddings are not supported)`);
  const rope_theta = shortestFloat32(num('rope.freq_base', 10000));
  let rope_scaling: RopeScaling | null = null;
  const scalingType = ggufValue(file, `${architecture}.rope.scaling.type`);
  const freqs = file.tensors.get('rope_freqs.weight');
  if (scalingType === 'linear' || scalingType === 'yarn') {
    rope_scaling = { rope_type: scalingType, factor: shortestFloat32(num('rope.scaling.factor')) };
    if (scalingType === 'yarn') rope_scaling.original_max_position_embeddings = num('rope.scaling.original_context_length');
  } else if (scalingType !== undefined && scalingType !== 'none') {
    throw new UserError(`${path}: rope.scaling.type "${String(scalingType)}" is not supported (attn reads none, linear, yarn, and Llama 3's rope_freqs)`);
  } else if (freqs) rope_scaling = llama3FromFactors(tensorToFloat32(freqs), head_dim, rope_theta, path);
  const has = (name: string): boolean => file.tensors.has(name);
  const config = parseLlamaConfig(
    {
      n_layer: num('block_count'),
      n_head,
      n_kv_head: num('attention.head_count_kv', n_head),
      n_embd,
      head_dim,
      intermediate_size: num('feed_forward_length'),
      vocab_size: emb.dims[1] ?? 0,
      block_size: num('context_length'),
      rms_norm_eps: shortestFloat32(num('attention.layer_norm_rms_epsilon', 1e-5)),
      rope_theta,
      rope_scaling,
      attention_bias: has('blk.0.attn_q.bias'),
      attention_out_bias: has('blk.0.attn_output.bias'),
      mlp_bias: has('blk.0.ffn_gate.bias'),
      tie_word_embeddings: !has('output.weight'),
      dropout: 0,
    },
    path,
  );
  // Parameters without values: each gets the array read from the file.
  const model = withoutAllocation(() => new Llama(config, new Rng(0)));
  const quantized = new Map<string, QuantizedMatrix>();
  const used = new Set<string>(freqs ? ['rope_freqs.weight'] : []);
  const permute = architecture === 'llama';
  for (const [name, p] of model.namedParameters()) {
    const gname = llamaGGUFName(name);
    const t = file.tensors.get(gname);
    if (!t) throw new UserError(`${path}: missing tensor ${gname}`);
    const want = [...p.shape].reverse();
    if (t.dims.join() !== want.join()) throw new UserError(`${path}: tensor ${gname} has dims [${t.dims}] but the config needs [${want}]`);
    let rotated = permute && isRotated(name);
    if (rotated && o.inPlace && t.type !== 'f16' && t.type !== 'bf16') {
      const rowBytes = t.type === 'f32' ? 4 * (p.shape[1] ?? 1) : quantRowBytes(t.type, t.dims[0] ?? 1);
      permuteRopeRowsInPlace(t.bytes, rowBytes, head_dim);
      rotated = false; // now in Hugging Face's order
    }
    if (t.type === 'f32' && !rotated && t.bytes.byteOffset % 4 === 0) {
      // The file's own bytes become the parameter (no second copy of an F32 model).
      p.data = new Float32Array(t.bytes.buffer, t.bytes.byteOffset, t.bytes.byteLength / 4);
    } else if (t.type === 'f32' || t.type === 'f16' || t.type === 'bf16') {
      const data = tensorToFloat32(t);
      p.data = rotated ? permuteRopeRows(data, p.shape[1] ?? 1, head_dim, 'from-gguf') : data;
    } else {
      let q = tensorAsQuantized(t);
      if (rotated) q = { ...q, data: permuteRopeRows(q.data, quantRowBytes(q.type, q.cols), head_dim, 'from-gguf') };
      quantized.set(name, q); // multiplied as stored: useQuantizedMatrices below
    }
    used.add(gname);
  }
  const extra = [...file.tensors.keys()].filter((n) => !used.has(n));
  if (extra.length) throw new UserError(`${path}: unexpected tensor ${extra[0]}${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''} for a ${architecture} model`);
  useQuantizedMatrices(model, quantized);
  model.eval();
  const tokenizer = tokenizerFromGGUF(file, path);
  if (tokenizer && tokenizer.vocabSize > config.vocab_size) throw new UserError(`${path}: tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${config.vocab_size}`);
  return { model, tokenizer, config, architecture, quantized };
}
