import { z } from 'zod';
import { pixelStats, type ImageSet } from '../data/image_set.js';
import { parseConfig } from '../util/validate.js';
import { ENCODER_CLASSIFIER_FIELDS, HEADS_DIVIDE_WIDTH, headsDivideWidth, LABEL_PER_CLASS, labelPerClass } from './encoder_classifier_config.js';

/** Every size of a ViT, as data. */
export const ViTConfigSchema = z
  .object({
    image_height: z.number().int().positive(),
    image_width: z.number().int().positive(),
    channels: z.number().int().positive(),
    /** Side of the square patches the image is cut into; must divide both image sides. */
    patch_size: z.number().int().positive(),
    ...ENCODER_CLASSIFIER_FIELDS,
    /** Per-channel pixel statistics of the training set (0…1 scale), to standardise inputs the same way at inference. */
    pixel_mean: z.array(z.number()),
    pixel_std: z.array(z.number().positive()),
  })
  .refine(headsDivideWidth, HEADS_DIVIDE_WIDTH)
  .refine((c) => c.image_height % c.patch_size === 0 && c.image_width % c.patch_size === 0, {
    message: 'patch size must divide the image height and width',
    path: ['patch_size'],
  })
  .refine(labelPerClass, LABEL_PER_CLASS)
  .refine((c) => c.pixel_mean.length === c.channels && c.pixel_std.length === c.channels, { message: 'needs one value per channel', path: ['pixel_mean'] });

export type ViTConfig = z.infer<typeof ViTConfigSchema>;
export type ViTConfigInput = z.input<typeof ViTConfigSchema>;

/** Validate a config, turning zod's report into one readable line. */
export function parseViTConfig(raw: unknown, source = 'config'): ViTConfig {
  return parseConfig(ViTConfigSchema, raw, source);
}

/** Number of patches the image is cut into (the sequence length, before the class token). */
export const numPatches = (c: ViTConfig): number => (c.image_height / c.patch_size) * (c.image_width / c.patch_size);

/** The sizes a trainer chooses (its flags); the rest of a ViT's config comes from the images. */
export interface ViTSizes {
  patch: number;
  dModel: number;
  layers: number;
  heads: number;
  /** Feed-forward width; default 2·dModel. */
  dFf?: number;
  dropout: number;
}

/** A ViT config for images shaped like `train`: its size, channels and classes, standardised with its pixel statistics. */
export function vitConfigFor(train: ImageSet, o: ViTSizes, source = 'ViT'): ViTConfig {
  const { mean, std } = pixelStats(train);
  return parseViTConfig({
    image_height: train.height, image_width: train.width, channels: train.channels, patch_size: o.patch,
    d_model: o.dModel, n_layer: o.layers, n_head: o.heads, d_ff: o.dFf ?? 2 * o.dModel, dropout: o.dropout,
    num_classes: train.classes.length, labels: train.classes, pixel_mean: mean, pixel_std: std,
  }, source);
}
