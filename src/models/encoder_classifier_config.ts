import { z } from 'zod';

/**
 * The sizes every encoder-then-classifier shares — the ViT (image patches
 * as tokens) and the point-cloud transformer (point patches as tokens):
 * the encoder's width, depth, heads and feed-forward, and the classes it
 * scores. Each model's schema spreads these beside its own tokenizer's
 * fields and adds the two checks below.
 */
export const ENCODER_CLASSIFIER_FIELDS = {
  d_model: z.number().int().positive(),
  n_layer: z.number().int().positive(),
  n_head: z.number().int().positive(),
  d_ff: z.number().int().positive(),
  dropout: z.number().min(0).lt(1).default(0),
  num_classes: z.number().int().min(2),
  /** Class names, index = class id. */
  labels: z.array(z.string()),
};

/** Each head gets an equal slice of the width. */
export const headsDivideWidth = (c: { d_model: number; n_head: number }): boolean => c.d_model % c.n_head === 0;
export const HEADS_DIVIDE_WIDTH = { message: 'd_model must be divisible by n_head', path: ['d_model'] };

export const labelPerClass = (c: { labels: string[]; num_classes: number }): boolean => c.labels.length === c.num_classes;
export const LABEL_PER_CLASS = { message: 'needs one label per class', path: ['labels'] };
