import { attentionOverlay, type HeatmapPicture } from '../util/attention_overlay.js';
import { encodePng } from '../util/png.js';
import { writeFileAtomic } from './atomic.js';

export type { HeatmapPicture } from '../util/attention_overlay.js';

/**
 * Attention over an image's patches drawn on the picture (util/attention_overlay.ts:
 * one panel per map, side by side), as PNG file bytes.
 */
export function attentionHeatmapPng(picture: HeatmapPicture, maps: ArrayLike<number>[], zoom = 8): Uint8Array {
  return encodePng(attentionOverlay(picture, maps, zoom));
}

/** Write the heatmap PNG atomically. */
export function writeAttentionHeatmap(path: string, picture: HeatmapPicture, maps: ArrayLike<number>[], zoom = 8): void {
  writeFileAtomic(path, attentionHeatmapPng(picture, maps, zoom));
}
