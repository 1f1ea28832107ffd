import { normalizedBatch, type ImageSet } from '../data/image_set.js';
import type { ViT } from '../models/vit.js';
import { Tensor, uploadForPass } from '../tensor/tensor.js';

/**
 * Standardised images at `indices` as the model's input tensor [n, H, W, C]
 * (the ViT's, or a captioner's image encoder's). No file access: the
 * playground's pages batch images with it too.
 */
export function imageBatch(model: ViT, set: ImageSet, indices: ArrayLike<number>): Tensor {
  const c = model.config;
  // On a device backend the batch is uploaded once, here.
  return new Tensor(uploadForPass(normalizedBatch(set, indices, c.pixel_mean, c.pixel_std)), [indices.length, set.height, set.width, set.channels]);
}
