import { z } from 'zod';
import { parseConfig } from '../util/validate.js';
import { ENCODER_CLASSIFIER_FIELDS, HEADS_DIVIDE_WIDTH, headsDivideWidth, LABEL_PER_CLASS, labelPerClass } from './encoder_classifier_config.js';

/** Every size of a point-cloud transformer, as data. */
export const PointTransformerConfigSchema = z
  .object({
    /** Patch tokens per cloud (farthest-point centres). */
    num_groups: z.number().int().positive(),
    /** Points in each patch (the centre's nearest neighbours, itself included). */
    group_size: z.number().int().positive(),
    /** Width of the mini-PointNet's hidden layer (per point, before the max-pool). */
    point_hidden: z.number().int().positive(),
    ...ENCODER_CLASSIFIER_FIELDS,
  })
  .refine(headsDivideWidth, HEADS_DIVIDE_WIDTH)
  .refine(labelPerClass, LABEL_PER_CLASS);

export type PointTransformerConfig = z.infer<typeof PointTransformerConfigSchema>;

export function parsePointTransformerConfig(raw: unknown, source = 'config'): PointTransformerConfig {
  return parseConfig(PointTransformerConfigSchema, raw, source);
}
