import { normalizedBatch, shuffled, type ImageSet } from '../../data/image_set.js';
import type { ViT } from '../../models/vit.js';
import { noGrad } from '../../tensor/autograd.js';
import { crossEntropy } from '../../tensor/ops/cross_entropy.js';
import { Tensor } from '../../tensor/tensor.js';
import { Rng } from '../../util/rng.js';
import { attentionRollout, collectMaps, type AttentionMaps } from './attention_maps.js';
import { removeEachHead, type HeadRemoval } from './head_removal.js';
import { probeStream, positionTarget, type ProbeTable } from './layer_probes.js';
import { argmaxRows } from './logit_lens.js';
import type { EncoderClassifierReport } from './classifier_report.js';
import { patchBrightness } from './patch_brightness.js';

export interface ViTInspectOptions {
  /** Seeds the choice of test images: the same seed, the same tables. Default 0. */
  seed?: number;
  /** Test images for head removal and the lens. Default 64. */
  images?: number;
  /** How many of the costliest heads to highlight. Default 3. */
  top?: number;
}

/** What `attn inspect` finds in a ViT, as data (vit_report_files.ts writes it out). */
export interface ViTInspectReport extends EncoderClassifierReport {
  kind: 'vit';
  images: number;
  /** The first chosen test image, for the maps: grayscale pixels (colour averaged), its class, and the patch size. */
  picture: { pixels: Uint8Array; height: number; width: number; patch: number; label: string };
  /** Linear probes per layer over all tokens: the token's position (R²) and its patch's brightness (R²; the class token: the image's). */
  probes: ProbeTable;
}

/** An image's pixels as grayscale bytes (the mean of its channels), for drawing. */
function grayscale(set: ImageSet, n: number): Uint8Array {
  const { height: H, width: W, channels: C } = set;
  return Uint8Array.from({ length: H * W }, (_, i) => {
    let s = 0;
    for (let c = 0; c < C; c++) s += set.pixels[(n * H * W + i) * C + c]!;
    return Math.round(s / C);
  });
}

/**
 * Look inside a ViT on test images chosen by a seed: the attention maps of
 * one image (the class token and every patch), the rollout and what the
 * class token draws on in the end, the test loss without each head, and the
 * "logit lens" of an encoder classifier — the class token read through the
 * final norm and head after each layer.
 */
export function inspectViT(model: ViT, set: ImageSet, o: ViTInspectOptions = {}): ViTInspectReport {
  const c = model.config;
  const seed = o.seed ?? 0;
  const idx = shuffled(set.count, new Rng(seed)).subarray(0, Math.min(o.images ?? 64, set.count));
  const batch = (ids: ArrayLike<number>): Tensor => new Tensor(normalizedBatch(set, ids, c.pixel_mean, c.pixel_std), [ids.length, set.height, set.width, set.channels]);
  const images = batch(idx);
  const labels = Int32Array.from(idx, (i) => set.labels[i]!);
  model.eval();
  const T = 1 + (c.image_height / c.patch_size) * (c.image_width / c.patch_size);
  const attention = collectMaps((attend) => model.forward(batch([idx[0]!]), undefined, attend), [c.n_layer, c.n_head, T]);
  const rollout = attentionRollout(attention);
  const stream = noGrad(() => model.stream(images));
  const lens = noGrad(() => stream.map((h, i) => {
    const logits = model.classScores(model.norm.forward(h));
    const top = argmaxRows(logits, c.num_classes);
    return { name: i === 0 ? 'embeddings' : `layer ${i}`, loss: crossEntropy(logits, labels).item(), accuracy: top.filter((t, r) => t === labels[r]).length / top.length };
  }));
  const lossWith = (attend?: Parameters<typeof model.forward>[2]): number => noGrad(() => crossEntropy(model.forward(images, undefined, attend).logits, labels).item());
  return {
    kind: 'vit',
    layers: c.n_layer,
    heads: c.n_head,
    seed,
    images: idx.length,
    picture: { pixels: grayscale(set, idx[0]!), height: set.height, width: set.width, patch: c.patch_size, label: c.labels[set.labels[idx[0]!]!] ?? String(set.labels[idx[0]!]) },
    attention,
    rollout,
    classRollout: rollout[0]!.slice(1),
    removal: removeEachHead(lossWith, [c.n_layer, c.n_head, c.d_model / c.n_head], o.top ?? 3),
    lens,
    probes: probeStream(stream, new Uint8Array(idx.length * T).fill(1), [
      positionTarget(idx.length, T),
      { name: 'brightness of the patch', binary: false, values: Float64Array.from(Array.from(idx).flatMap((n) => patchBrightness(grayscale(set, n), set.height, set.width, c.patch_size))) },
    ], stream.map((_, i) => (i === 0 ? 'embeddings' : `layer ${i}`))),
  };
}
