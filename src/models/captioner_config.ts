import { z } from 'zod';
import { parseConfig } from '../util/validate.js';
import { ViTConfigSchema } from './vit_config.js';

/** Every size of the image captioner, as data: the ViT's config, then the text decoder's. */
export const CaptionerConfigSchema = z
  .object({
    /** The image encoder (its d_model and n_head serve the decoder too). */
    image: ViTConfigSchema,
    /** Caption words, index = token id; 0, 1, 2 are <pad>, <bos>, <eos>. */
    vocab: z.array(z.string()).min(4),
    /** Longest caption in tokens, <bos> included. */
    max_length: z.number().int().min(2),
    n_decoder_layers: z.number().int().positive(),
  });

export type CaptionerConfig = z.infer<typeof CaptionerConfigSchema>;

export function parseCaptionerConfig(raw: unknown, source = 'config'): CaptionerConfig {
  return parseConfig(CaptionerConfigSchema, raw, source);
}
