import { existsSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { readSafetensorsHeader, SafetensorsError, type TensorHeader } from './safetensors.js';

/**
 * Sizes in a model's config.json, checked before a loader allocates anything.
 *
 * A loader builds the model from its config, then copies the weights in. A
 * config that says `n_embd: 1000000000` would ask for a typed array of
 * gigabytes before any tensor is compared, and die with a RangeError stack.
 * So each loader first calls checkConfigSizes: every size key must be a sane
 * number, and no larger than what the weights file's header (its shapes, read
 * without the data) shows — a wrong key is named in one line.
 *
 * The keys of every attn config (GPT, HF GPT-2, seq2seq, ViT, embedder), by
 * what they count:
 * - widths are a dimension of some tensor (n_embd is wte's second, vocab_size
 *   its first, d_ff a feed-forward matrix's), so none can exceed the largest
 *   dimension in the header;
 * - layer counts cannot exceed the layers the tensor names number ("h.11.",
 *   "encoder.layers.2.");
 * - lengths (context, image sides) may exceed every tensor (RoPE and
 *   sinusoidal positions are computed, not stored), so they only have a limit,
 *   as have head counts.
 * The limits are sanity bounds far above any model attn can run on a CPU
 * (GPT-3's widths are 12 288 and 49 152), not capabilities.
 */

const WIDTH_KEYS = ['n_embd', 'n_inner', 'd_model', 'd_ff', 'vocab_size', 'num_classes'];
const LAYER_KEYS = ['n_layer', 'n_encoder_layers', 'n_decoder_layers'];
const LENGTH_KEYS = ['block_size', 'n_positions', 'n_ctx', 'max_length', 'max_len', 'image_height', 'image_width', 'patch_size', 'channels'];
const HEAD_KEYS = ['n_head'];

/** Largest width (embedding, hidden, vocabulary) accepted at all: 2^22 (4 194 304). */
export const MAX_WIDTH = 1 << 22;
/** Largest layer count: 1024 (GPT-3 has 96). */
export const MAX_LAYERS = 1024;
/** Largest head count: 1024. */
export const MAX_HEADS = 1024;
/** Largest length (positions, image side): 2^20 = 1 048 576. */
export const MAX_LENGTH = 1 << 20;

interface Limit {
  keys: string[];
  max: number;
  what: string;
}

const LIMITS: Limit[] = [
  { keys: WIDTH_KEYS, max: MAX_WIDTH, what: 'a width' },
  { keys: LAYER_KEYS, max: MAX_LAYERS, what: 'a layer count' },
  { keys: HEAD_KEYS, max: MAX_HEADS, what: 'a head count' },
  { keys: LENGTH_KEYS, max: MAX_LENGTH, what: 'a length' },
];

/**
 * Throws a one-line UserError naming the first size key of `raw` (a parsed
 * config.json) that is absurd, or larger than `weightsPath`'s tensors allow.
 * Keys that are absent or not numbers are left to the config's own parser;
 * a missing or corrupt weights file is left to the weight loader, which says
 * so (only the limits apply then).
 */
export function checkConfigSizes(raw: Record<string, unknown>, configPath: string, weightsPath?: string): void {
  for (const { keys, max, what } of LIMITS) {
    for (const key of keys) {
      const v = raw[key];
      if (typeof v !== 'number') continue;
      if (!Number.isSafeInteger(v) || v < 1) throw new UserError(`${configPath}: ${key} is ${v}; it must be a positive integer`);
      if (v > max) throw new UserError(`${configPath}: ${key} is ${v}, beyond any sane size for ${what} (limit ${max})`);
    }
  }
  const header = weightsPath === undefined ? null : tryHeader(weightsPath);
  if (!header) return;
  const dims = largestDimension(header);
  for (const key of WIDTH_KEYS) {
    const v = raw[key];
    if (typeof v === 'number' && v > dims) {
      throw new UserError(`${configPath}: ${key} is ${v}, but no tensor in ${weightsPath} has a dimension that large (the largest is ${dims})`);
    }
  }
  const layers = numberedLayers(header);
  for (const key of LAYER_KEYS) {
    const v = raw[key];
    if (typeof v === 'number' && v > layers) {
      throw new UserError(`${configPath}: ${key} is ${v}, but the tensors in ${weightsPath} number at most ${layers} layers`);
    }
  }
}

function tryHeader(path: string): Map<string, TensorHeader> | null {
  if (!existsSync(path)) return null;
  try {
    return readSafetensorsHeader(path);
  } catch (e) {
    if (e instanceof SafetensorsError) return null; // the weight loader reports it in its own words
    throw e;
  }
}

function largestDimension(header: Map<string, TensorHeader>): number {
  let max = 0;
  for (const t of header.values()) for (const d of t.shape) max = Math.max(max, d);
  return max;
}

/** One more than the largest number among the tensor names' dotted parts ("h.11.attn" → 12); no bound when none is numbered. */
function numberedLayers(header: Map<string, TensorHeader>): number {
  let max = 0;
  for (const name of header.keys()) {
    for (const part of name.split('.')) if (/^\d+$/.test(part)) max = Math.max(max, Number(part) + 1);
  }
  return max === 0 ? Infinity : max;
}
