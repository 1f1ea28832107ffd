import type { Picture } from './png.js';

/**
 * Attention over an image's patches drawn on the picture, as RGBA pixels:
 * one panel per map (e.g. one per caption word), side by side. Each panel is
 * the grayscale picture enlarged `zoom` times with the weights laid over it
 * in a black–red–yellow–white scale, each panel scaled to its own largest
 * weight (a word that looks at one patch and one that spreads its attention
 * both show where they looked most). No codec and no DOM: the CLI writes it
 * as PNG (io/attention_heatmap_png.ts), the playground puts it on a canvas.
 */
export interface HeatmapPicture {
  /** Grayscale pixels, row-major, height × width. */
  pixels: Uint8Array;
  height: number;
  width: number;
  /** Side of the square patches the weights belong to (patches in reading order). */
  patch: number;
}

/** White pixels between the panels. */
export const PANEL_GAP = 4;

/** Weight 0 … 1 → an RGB colour of the "hot" scale. */
export function hot(w: number): [number, number, number] {
  const c = (v: number): number => Math.round(255 * Math.min(1, Math.max(0, v)));
  return [c(3 * w), c(3 * w - 1), c(3 * w - 2)];
}

export function attentionOverlay(picture: HeatmapPicture, maps: ArrayLike<number>[], zoom = 8): Picture {
  const { pixels, height: H, width: W, patch: p } = picture;
  const cols = W / p;
  const panelW = W * zoom;
  const width = maps.length * panelW + (maps.length - 1) * PANEL_GAP;
  const rgba = new Uint8Array(width * H * zoom * 4).fill(255);
  maps.forEach((weights, m) => {
    let max = 0;
    for (let i = 0; i < weights.length; i++) max = Math.max(max, weights[i]!);
    for (let y = 0; y < H * zoom; y++) {
      for (let x = 0; x < panelW; x++) {
        const [py, px] = [Math.floor(y / zoom), Math.floor(x / zoom)];
        const gray = pixels[py * W + px]!;
        const w = max > 0 ? weights[Math.floor(py / p) * cols + Math.floor(px / p)]! / max : 0;
        const [r, g, b] = hot(w);
        // Blend: the picture shows through where attention is low.
        const a = 0.65 * w;
        const o = (y * width + m * (panelW + PANEL_GAP) + x) * 4;
        rgba[o] = Math.round((1 - a) * gray + a * r);
        rgba[o + 1] = Math.round((1 - a) * gray + a * g);
        rgba[o + 2] = Math.round((1 - a) * gray + a * b);
        rgba[o + 3] = 255;
      }
    }
  });
  return { width, height: H * zoom, rgba };
}
