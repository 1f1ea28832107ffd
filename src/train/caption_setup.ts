import { captionVocabulary, encodeCaption, PAD, BOS } from '../data/fashion_captions.js';
import type { ImageSet } from '../data/image_set.js';
import { Captioner } from '../models/captioner.js';
import { parseCaptionerConfig } from '../models/captioner_config.js';
import { vitConfigFor } from '../models/vit_config.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import type { CaptionTrainOptions } from './caption_options.js';

/**
 * What training a captioner starts from, free of file access (the CLI's
 * trainer and the playground's captioning page both use it): a model sized
 * for the images and captions, and the token rows of its captions.
 */
export type CaptionModelOptions = Pick<CaptionTrainOptions, 'patch' | 'dModel' | 'layers' | 'heads' | 'dFf' | 'dropout' | 'decoderLayers' | 'seed'>;

/** A captioner for these images and captions: a ViT image encoder (standardised with the set's pixel statistics) and a text decoder long enough for the longest caption. */
export function captionerFor(train: ImageSet, captions: string[], o: CaptionModelOptions): Captioner {
  const image = vitConfigFor(train, o, 'captioner image encoder');
  const longest = Math.max(...captions.map((c) => c.split(' ').length));
  const config = parseCaptionerConfig({ image, vocab: captionVocabulary(), max_length: longest + 2, n_decoder_layers: o.decoderLayers }, 'captioner');
  return new Captioner(config, new Rng(o.seed));
}

/** Caption token rows for the images at `idx`: the decoder's input (<bos> + words) and targets (words + <eos>), padded to max_length. */
export function captionTokens(model: Captioner, captions: string[], idx: ArrayLike<number>): { tokensIn: Int32Array; targets: Int32Array } {
  const T = model.config.max_length;
  const tokensIn = new Int32Array(idx.length * T).fill(PAD);
  const targets = new Int32Array(idx.length * T).fill(PAD);
  for (let r = 0; r < idx.length; r++) {
    const ids = encodeCaption(captions[idx[r]!]!, model.config.vocab);
    if (ids.length > T) throw new UserError(`caption "${captions[idx[r]!]}" is longer than the model's ${T} tokens`);
    tokensIn[r * T] = BOS;
    tokensIn.set(ids.subarray(0, Math.min(ids.length, T - 1)), r * T + 1);
    targets.set(ids, r * T);
  }
  return { tokensIn, targets };
}

