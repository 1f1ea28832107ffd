import { EncoderLayer } from '../nn/encoder_layer.js';
import { Dropout } from '../nn/dropout.js';
import { normalParameter } from '../nn/init.js';
import { LayerNorm } from '../nn/layernorm.js';
import { Linear } from '../nn/linear.js';
import { Module, type Parameter } from '../nn/module.js';
import { crossEntropy } from '../tensor/ops/cross_entropy.js';
import { add, gelu } from '../tensor/ops/elementwise.js';
import { maxPool } from '../tensor/ops/max_pool.js';
import { concat, repeatRows, reshape, slice } from '../tensor/ops/shape.js';
import { Tensor } from '../tensor/tensor.js';
import { Rng } from '../util/rng.js';
import type { LayerAttend } from './causal_lm.js';
import type { PointTransformerConfig } from './point_transformer_config.js';

export interface PointCloudOutput {
  /** [N, num_classes] class scores. */
  logits: Tensor;
  loss: Tensor | null;
}

/**
 * A point-cloud transformer (after Point-BERT and Point-MAE): a cloud cut
 * into patch tokens (point_patches.ts), each patch embedded by a
 * mini-PointNet — the same small MLP on every point, then a max over the
 * patch's points, so the order of the points does not matter — plus an
 * embedding of where the patch sits (an MLP of its centre: there is no grid
 * to number, as a ViT's patches have). Then the ViT's recipe: a class token
 * in front, pre-norm encoder layers, classify from the class token.
 */
export class PointCloudTransformer extends Module {
  point_in: Linear;
  point_out: Linear;
  pos_in: Linear;
  pos_out: Linear;
  cls_token: Parameter;
  cls_pos: Parameter;
  drop: Dropout;
  blocks: EncoderLayer[];
  norm: LayerNorm;
  head: Linear;
  readonly config: PointTransformerConfig;

  constructor(config: PointTransformerConfig, rng: Rng = new Rng(1337)) {
    super();
    this.config = config;
    const { point_hidden: h, d_model: D } = config;
    const lin = (i: number, o: number, std = Math.sqrt(2 / i)): Linear => new Linear(i, o, { bias: true, std, rng });
    this.point_in = lin(3, h);
    this.point_out = lin(h, D);
    this.pos_in = lin(3, h);
    this.pos_out = lin(h, D, 0.02);
    this.cls_token = normalParameter([1, 1, D], 0.02, rng);
    this.cls_pos = normalParameter([1, 1, D], 0.02, rng);
    this.drop = new Dropout(config.dropout, rng);
    this.blocks = Array.from({ length: config.n_layer }, () =>
      new EncoderLayer({ d_model: D, n_head: config.n_head, d_ff: config.d_ff, dropout: config.dropout, norm: 'pre', activation: 'gelu' }, rng));
    this.norm = new LayerNorm(D, { bias: true, eps: 1e-6 });
    this.head = new Linear(D, config.num_classes, { bias: true, std: 0.02, rng });
  }

  /**
   * patches [N, G, K, 3] (points relative to their centre), centres [N, G, 3];
   * labels, if given, one class per cloud; attend, if given, replaces layer
   * l's attention op (eval/inspect/ reads and removes heads through it).
   */
  forward(patches: Tensor, centres: Tensor, labels?: Int32Array, attend?: LayerAttend): PointCloudOutput {
    const logits = this.classScores(this.norm.forward(this.stream(patches, centres, attend).at(-1)!));
    return { logits, loss: labels ? crossEntropy(logits, labels) : null };
  }

  /** Class scores [N, num_classes] from the normed encoder output: the head reads the class token's vector. */
  classScores(encoded: Tensor): Tensor {
    const [N, , D] = encoded.shape as [number, number, number];
    return this.head.forward(reshape(slice(encoded, 1, 0, 1), [N, D]));
  }

  /**
   * The residual stream: the embedded tokens (the class token, then one per
   * patch) first, then the vectors after each encoder layer, before the final
   * norm. `forward` keeps the last; eval/inspect/ reads them all.
   */
  stream(patches: Tensor, centres: Tensor, attend?: LayerAttend): Tensor[] {
    const N = patches.shape[0]!;
    const { num_groups: G, group_size: K, d_model: D } = this.config;
    if (patches.shape.join() !== [N, G, K, 3].join() || centres.shape.join() !== [N, G, 3].join()) {
      throw new Error(`PointCloudTransformer expects patches [N, ${G}, ${K}, 3] and centres [N, ${G}, 3], got [${patches.shape}] and [${centres.shape}]`);
    }
    // Mini-PointNet: every point through the same MLP, then the max over its patch.
    const perPoint = this.point_out.forward(gelu(this.point_in.forward(reshape(patches, [N * G, K, 3]))));
    const tokens = reshape(maxPool(perPoint), [N, G, D]);
    const where = this.pos_out.forward(gelu(this.pos_in.forward(centres)));
    const cls = repeatRows(add(this.cls_token, this.cls_pos), N);
    let x = this.drop.forward(concat([cls, add(tokens, where)], 1));
    const out = [x];
    this.blocks.forEach((block, l) => {
      x = block.forward(x, undefined, attend && ((q, k, v, o) => attend(l, q, k, v, o)));
      out.push(x);
    });
    return out;
  }
}
