import { z } from 'zod';
import { parseConfig } from '../util/validate.js';

/** Every size of a ViT, as data. */
export const ViTConfigSchema = z
  .object({
    image_height: z.number().int().positive(),
    image_width: z.number().int().positive(),
    channels: z.number().int().positive(),
    /** Side of the square patches the image is cut into; must divide both image sides. */
    patch_size: z.number().int().positive(),
    d_model: z.number().int().positive(),
    n_layer: z.number().int().positive(),
    n_head: z.number().int().positive(),
    d_ff: z.number().int().positive(),
    dropout: z.number().min(0).lt(1).default(0),
    num_classes: z.number().int().min(2),
    /** Class names, index = class id. */
    labels: z.array(z.string()),
    /** Per-channel pixel statistics of the training set (0…1 scale), to standardise inputs the same way at inference. */
    pixel_mean: z.array(z.number()),
    pixel_std: z.array(z.number().positive()),
  })
  .refine((c) => c.d_model % c.n_head === 0, { message: 'd_model must be divisible by n_head', path: ['d_model'] })
  .refine((c) => c.image_height % c.patch_size === 0 && c.image_width % c.patch_size === 0, {
    message: 'patch size must divide the image height and width',
    path: ['patch_size'],
  })
  .refine((c) => c.labels.length === c.num_classes, { message: 'needs one label per class', path: ['labels'] })
  .refine((c) => c.pixel_mean.length === c.channels && c.pixel_std.length === c.channels, { message: 'needs one value per channel', path: ['pixel_mean'] });

export type ViTConfig = z.infer<typeof ViTConfigSchema>;
export type ViTConfigInput = z.input<typeof ViTConfigSchema>;

/** Validate a config, turning zod's report into one readable line. */
export function parseViTConfig(raw: unknown, source = 'config'): ViTConfig {
  return parseConfig(ViTConfigSchema, raw, source);
}

/** Number of patches the image is cut into (the sequence length, before the class token). */
export const numPatches = (c: ViTConfig): number => (c.image_height / c.patch_size) * (c.image_width / c.patch_size);
