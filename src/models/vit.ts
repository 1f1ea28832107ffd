import { Dropout } from '../nn/dropout.js';
import { EncoderLayer } from '../nn/encoder_layer.js';
import { normalParameter } from '../nn/init.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Linear } from '../nn/linear.js';
import { Module, type Parameter } from '../nn/module.js';
import { crossEntropy } from '../tensor/ops/cross_entropy.js';
import { add } from '../tensor/ops/elementwise.js';
import { concat, repeatRows, reshape, slice } from '../tensor/ops/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import type { LayerAttend } from './causal_lm.js';
import { patchify } from './patchify.js';
import { numPatches, type ViTConfig } from './vit_config.js';

export interface ViTOutput {
  /** [N, num_classes] class scores. */
  logits: Tensor;
  /** Mean cross-entropy against the labels, when labels were given. */
  loss: Tensor | null;
}

/**
 * The Vision Transformer ("An image is worth 16×16 words", Dosovitskiy et
 * al. 2020): cut the image into patches, embed each patch with one Linear
 * layer, put a learned class token in front, add learned positions, run
 * a stack of (pre-norm, GELU) encoder layers, and classify from the class
 * token's final vector. No convolutions: the only image-specific step is
 * the patching.
 */
export class ViT extends Module {
  patch_embed: Linear;
  cls_token: Parameter;
  pos_embed: Parameter;
  drop: Dropout;
  blocks: EncoderLayer[];
  norm: LayerNorm;
  head: Linear;
  readonly config: ViTConfig;

  constructor(config: ViTConfig, rng: Rng = new Rng(1337)) {
    super();
    this.config = config;
    const c = config;
    const patchLen = c.patch_size * c.patch_size * c.channels;
    this.patch_embed = new Linear(patchLen, c.d_model, { bias: true, std: Math.sqrt(1 / patchLen), rng });
    this.cls_token = normalParameter([1, 1, c.d_model], 0.02, rng);
    this.pos_embed = normalParameter([1, numPatches(c) + 1, c.d_model], 0.02, rng);
    this.drop = new Dropout(c.dropout, rng);
    this.blocks = Array.from({ length: c.n_layer }, () =>
      new EncoderLayer({ d_model: c.d_model, n_head: c.n_head, d_ff: c.d_ff, dropout: c.dropout, norm: 'pre', activation: 'gelu' }, rng));
    this.norm = new LayerNorm(c.d_model, { bias: true, eps: 1e-6 });
    this.head = new Linear(c.d_model, c.num_classes, { bias: true, std: 0.02, rng });
  }

  /**
   * images: [N, H, W, C] standardised pixels (see data/image_set.ts); labels,
   * if given, one class per image; attend, if given, replaces layer l's
   * attention op (eval/inspect/ reads and removes heads through it).
   */
  forward(images: Tensor, labels?: Int32Array, attend?: LayerAttend): ViTOutput {
    const logits = this.classScores(this.encode(images, attend));
    return { logits, loss: labels ? crossEntropy(logits, labels) : null };
  }

  /** Class scores [N, num_classes] from the encoder's output: the head reads the class token's vector. */
  classScores(encoded: Tensor): Tensor {
    const [N, , D] = encoded.shape as [number, number, number];
    return this.head.forward(reshape(slice(encoded, 1, 0, 1), [N, D]));
  }

  /**
   * The encoder alone: [N, 1 + patches, D], the class token's final vector
   * first, then one per patch in reading order. A classifier reads the first;
   * a captioner's decoder attends to them all (models/captioner.ts).
   */
  encode(images: Tensor, attend?: LayerAttend): Tensor {
    return this.norm.forward(this.stream(images, attend).at(-1)!);
  }

  /**
   * The residual stream: the embedded patches (with the class token and
   * positions) first, then the vectors after each encoder layer, before the
   * final norm. `encode` keeps the last; eval/inspect/ reads them all.
   */
  stream(images: Tensor, attend?: LayerAttend): Tensor[] {
    const N = images.shape[0]!;
    const { image_height: H, image_width: W, channels: C, patch_size: p } = this.config;
    if (images.shape.join() !== [N, H, W, C].join()) throw new Error(`ViT expects images [N, ${H}, ${W}, ${C}], got [${images.shape}]`);
    const patches = this.patch_embed.forward(patchify(images, p)); // [N, P, D]
    // One learned class token per image (repeated over the batch), in front of the patches.
    const cls = repeatRows(this.cls_token, N);
    let x = add(concat([cls, patches], 1), this.pos_embed);
    x = this.drop.forward(x);
    const out = [x];
    this.blocks.forEach((block, l) => {
      x = block.forward(x, undefined, attend && ((q, k, v, o) => attend(l, q, k, v, o)));
      out.push(x);
    });
    return out;
  }
}
