import { decoderParts, type InspectableLM } from './decoder_parts.js';
import type { LayerAttend } from '../../models/causal_lm.js';
import { noGrad } from '../../tensor/autograd.js';
import { attention } from '../../tensor/ops/attention.js';
import { crossEntropy } from '../../tensor/ops/cross_entropy.js';

export interface HeadRemoval {
  /** Validation loss of the intact model. */
  baseline: number;
  /** loss[layer][head]: the loss with that one head's output set to zero. */
  loss: number[][];
  /** The `top` heads whose removal costs most, as [layer, head], costliest first. */
  costliest: Array<[number, number]>;
}

/**
 * The effect of removing each head on the validation loss: the head's output
 * (its slice of the attention result, before the output projection mixes the
 * heads) is set to zero, everything else kept. Heads whose removal raises
 * the loss most are the ones the model relies on. `lossWith(attend)` is the
 * validation loss with layer l's attention op replaced by `attend` — for
 * any model whose layers take one (decoders below, the ViT in inspect_vit.ts).
 */
export function removeEachHead(lossWith: (attend?: LayerAttend) => number, [L, H, D]: [number, number, number], top = 3): HeadRemoval {
  const baseline = lossWith();
  const loss = Array.from({ length: L }, (_, layer) => Array.from({ length: H }, (_, head) => lossWith((l, q, k, v, o) => {
    const out = attention(q, k, v, o);
    if (l === layer) {
      const C = out.shape[2]!; // all heads' outputs side by side: H·D (under grouped-query attention too)
      for (let row = 0; row < out.size / C; row++) out.data.fill(0, row * C + head * D, row * C + (head + 1) * D);
    }
    return out;
  })));
  const ranked = loss.flatMap((row, l) => row.map((v, h) => ({ l, h, v }))).sort((a, b) => b.v - a.v || a.l - b.l || a.h - b.h);
  return { baseline, loss, costliest: ranked.slice(0, Math.min(top, ranked.length)).map((r) => [r.l, r.h]) };
}

/** Head removal for a decoder: `x`, `y` are B windows of T tokens and their next tokens (deterministic for a seed: residual_stream.ts). */
export function headRemoval(model: InspectableLM, x: Int32Array, y: Int32Array, [B, T]: [number, number], top = 3): HeadRemoval {
  const { layers, heads, headDim } = decoderParts(model);
  const lossWith = (attend?: LayerAttend): number => noGrad(() => crossEntropy(model.forward(x, [B, T], undefined, { attend }).logits, y).item());
  return removeEachHead(lossWith, [layers, heads, headDim], top);
}
