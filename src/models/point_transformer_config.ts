import { z } from 'zod';
import { parseConfig } from '../util/validate.js';

/** Every size of a point-cloud transformer, as data. */
export const PointTransformerConfigSchema = z
  .object({
    /** Patch tokens per cloud (farthest-point centres). */
    num_groups: z.number().int().positive(),
    /** Points in each patch (the centre's nearest neighbours, itself included). */
    group_size: z.number().int().positive(),
    /** Width of the mini-PointNet's hidden layer (per point, before the max-pool). */
    point_hidden: z.number().int().positive(),
    d_model: z.number().int().positive(),
    n_layer: z.number().int().positive(),
    n_head: z.number().int().positive(),
    d_ff: z.number().int().positive(),
    dropout: z.number().min(0).lt(1).default(0),
    num_classes: z.number().int().min(2),
    /** Class names, index = class id. */
    labels: z.array(z.string()),
  })
  .refine((c) => c.d_model % c.n_head === 0, { message: 'd_model must be divisible by n_head', path: ['d_model'] })
  .refine((c) => c.labels.length === c.num_classes, { message: 'needs one label per class', path: ['labels'] });

export type PointTransformerConfig = z.infer<typeof PointTransformerConfigSchema>;

export function parsePointTransformerConfig(raw: unknown, source = 'config'): PointTransformerConfig {
  return parseConfig(PointTransformerConfigSchema, raw, source);
}
