import { totalmem } from 'node:os';
import { UserError } from '../util/errors.js';

/**
 * Sizes too large for the machine, refused before anything is allocated.
 *
 * The encoder trainers (ViT, captioner, point clouds) build their model
 * straight from the size flags. A flag like `--d-model 1000000000` used to
 * reach the first weight allocation and die there with a RangeError stack
 * (or, a little smaller, hang while the machine swapped). Counting the weights
 * from the flags costs nothing, so a command checks them first and says, in
 * one line, how much memory the run would need.
 */

/** Bytes each float32 weight costs while training: the weight, its gradient and AdamW's two moments. */
export const TRAINING_BYTES_PER_WEIGHT = 16;

/** V8 cannot make a Float32Array of 2^32 elements or more: a larger weight matrix cannot exist at all. */
const MAX_ARRAY_ELEMENTS = 2 ** 32;

/**
 * The weights of the transformer layers (a lower bound of the model's):
 * per encoder layer, attention's four d×d projections and the feed-forward's
 * d×d_ff pair; a decoder layer adds its cross-attention's four. Embeddings,
 * norms and the head are small beside them.
 */
export function layerWeights(o: { dModel: number; dFf?: number; layers: number; decoderLayers?: number }): number {
  const d = o.dModel;
  const ff = o.dFf ?? 2 * d;
  return o.layers * (4 * d * d + 2 * d * ff) + (o.decoderLayers ?? 0) * (8 * d * d + 2 * d * ff);
}

const gib = (bytes: number): string => {
  const g = bytes / 2 ** 30;
  return `${g < 1e6 ? g.toFixed(1) : g.toExponential(1)} GiB`;
};

/** Refuse `what` (it says which flags) when it needs more than this machine's memory. */
export function checkFitsInMemory(bytes: number, what: string): void {
  const have = totalmem();
  if (bytes > have) throw new UserError(`${what} needs about ${gib(bytes)} of memory, more than this machine's ${gib(have)}`);
}

/** The size flags of an encoder trainer (the options of vit_options.ts, caption_options.ts, point_cloud_options.ts). */
export interface EncoderSizeFlags {
  dModel: number;
  dFf?: number;
  layers: number;
  decoderLayers?: number;
  /** The point-cloud model's mini-PointNet: two 3→h→d_model stacks (points and centres). */
  pointHidden?: number;
}

/**
 * Refuse a model whose training state (TRAINING_BYTES_PER_WEIGHT per weight)
 * exceeds the machine's memory, or whose largest matrix no array can hold;
 * the one-line error names the size flags.
 */
export function checkModelFits(o: EncoderSizeFlags): void {
  const d = o.dModel;
  const ff = o.dFf ?? 2 * d;
  const h = o.pointHidden ?? 0;
  const weights = layerWeights(o) + 2 * (3 * h + h * d);
  const flags = [`--d-model ${d}`, `--d-ff ${ff}`, `--layers ${o.layers}`];
  if (o.decoderLayers !== undefined) flags.push(`--decoder-layers ${o.decoderLayers}`);
  if (o.pointHidden !== undefined) flags.push(`--point-hidden ${h}`);
  checkWeights(weights, d * Math.max(d, ff, h), flags.join(', '));
}

/** Refuse `weights` to train whose largest matrix (`largestMatrix` numbers) no array can hold, or whose training state exceeds the machine's memory; `flags` names the sizes. */
function checkWeights(weights: number, largestMatrix: number, flags: string): void {
  if (largestMatrix >= MAX_ARRAY_ELEMENTS) {
    throw new UserError(`${flags}: one weight matrix would hold ${largestMatrix.toExponential(2)} numbers, more than an array can (2^32); choose smaller sizes`);
  }
  checkFitsInMemory(weights * TRAINING_BYTES_PER_WEIGHT, `${flags}: training about ${weights.toExponential(2)} weights (with their gradients and AdamW's moments)`);
}

/**
 * The same check for `attn train`'s decoder (a GPT, or a Llama of the same
 * widths): per layer attention's 4·d² and a feed-forward of about 8·d²
 * (GPT: d→4d→d; Llama: three d×(8d/3) matrices), plus the token and position
 * tables. `vocab` is known once the tokenizer is built.
 */
export function checkDecoderFits(o: { nLayer: number; nEmbd: number; blockSize: number }, vocab: number): void {
  const d = o.nEmbd;
  const weights = 12 * o.nLayer * d * d + (vocab + o.blockSize) * d;
  checkWeights(weights, d * Math.max(4 * d, vocab, o.blockSize), `--n-embd ${d}, --n-layer ${o.nLayer} (vocabulary ${vocab}, --block-size ${o.blockSize})`);
}
