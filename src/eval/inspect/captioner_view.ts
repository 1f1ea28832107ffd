import { FASHION_WORDS, PAD, type CaptionedImages } from '../../data/fashion_captions.js';
import { normalizedBatch } from '../../data/image_set.js';
import type { Captioner } from '../../models/captioner.js';
import { Tensor } from '../../tensor/tensor.js';
import { patchBrightness } from './patch_brightness.js';
import type { EncDecBatch, EncoderDecoderView } from './encoder_decoder_view.js';

/** Teacher-forcing tokens for some captions (train/caption_setup.ts's captionTokens, handed down by the command). */
export type CaptionTokens = (idx: ArrayLike<number>) => { tokensIn: Int32Array; targets: Int32Array };

const GARMENT = new Set(FASHION_WORDS.flatMap((w) => w.split(' ')));

/**
 * A captioner (`attn caption`) on captioned test images, as the view
 * inspect_encoder_decoder.ts reads: the ViT's class token and patches are
 * the source, the caption the target. The encoder's probe reads each
 * patch's brightness (the mean of its pixels, 0…1; the whole image's for
 * the class token) — the captions' "bright"/"dark" words are made from it;
 * the decoder's asks whether the next word names the garment. Captions are
 * cut to the longest in the batch (the model pads them to max_length).
 */
export function captionerView(model: Captioner, data: CaptionedImages, tokens: CaptionTokens): EncoderDecoderView {
  const c = model.config.image;
  const { height: H, width: W } = data.images;
  const p = c.patch_size;
  const patches = (H / p) * (W / p);
  const brightness = (n: number): number[] => patchBrightness(data.images.pixels.subarray(n * H * W, (n + 1) * H * W), H, W, p);
  model.eval();
  return {
    kind: 'captioner',
    encoderLayers: c.n_layer,
    decoderLayers: model.config.n_decoder_layers,
    heads: c.n_head,
    headDim: c.d_model / c.n_head,
    count: data.images.count,
    batch(indices): EncDecBatch {
      const B = indices.length;
      const full = tokens(indices);
      const T0 = full.tokensIn.length / B;
      let Tt = 1;
      for (let r = 0; r < B; r++) for (let t = 0; t < T0; t++) if (full.targets[r * T0 + t] !== PAD) Tt = Math.max(Tt, t + 1);
      const cut = (a: Int32Array): Int32Array => Int32Array.from({ length: B * Tt }, (_, i) => a[Math.floor(i / Tt) * T0 + (i % Tt)]!);
      const tokensIn = cut(full.tokensIn);
      const targets = cut(full.targets);
      const images = new Tensor(normalizedBatch(data.images, indices, c.pixel_mean, c.pixel_std), [B, H, W, data.images.channels]);
      const vocab = model.config.vocab;
      return {
        B, Ts: 1 + patches, Tt,
        streams(attends = {}) {
          const encoder = model.encoder.stream(images, attends.encoder);
          const memory = model.encoder.norm.forward(encoder.at(-1)!);
          return { encoder, decoder: model.decoderStream(memory, tokensIn, { self: attends.self, cross: attends.cross }) };
        },
        readOut: (h) => model.readOut(h),
        targets,
        ignoreIndex: PAD,
        srcKeep: new Uint8Array(B * (1 + patches)).fill(1),
        tgtKeep: Uint8Array.from(targets, (id) => (id === PAD ? 0 : 1)),
        encoderProbe: { name: 'brightness of the patch', binary: false, values: Float64Array.from(Array.from(indices).flatMap(brightness)) },
        decoderProbe: { name: 'next word names the garment', binary: true, values: Float64Array.from(targets, (id) => (GARMENT.has(vocab[id] ?? '') ? 1 : 0)) },
        srcLabels: ['class', ...Array.from({ length: patches }, (_, i) => `p${i + 1}`)],
        tgtLabels: Array.from(tokensIn.subarray(0, Tt), (id) => vocab[id] ?? '?'),
      };
    },
  };
}
