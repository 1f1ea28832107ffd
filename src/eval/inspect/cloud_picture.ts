import type { PointPatches } from '../../models/point_patches.js';
import { hot, PANEL_GAP } from '../../util/attention_overlay.js';
import type { Picture } from '../../util/png.js';

/**
 * Weights over a point cloud's patches drawn on the cloud, as RGBA pixels:
 * every patch's points seen from the front (x across, y up) and from the
 * side (z across, y up), side by side, each point coloured by its patch's
 * weight in the black–red–yellow–white scale of attention_overlay.ts (scaled
 * to the largest weight). The pale gray points are the low-weight patches
 * under the others: points are drawn from the lightest weight to the
 * heaviest, so where the class token looks stays on top. The cloud is
 * normalised to the unit sphere (point_patches.ts), so ±1 fills a panel.
 */
export function cloudOverlay(tokens: PointPatches, weights: ArrayLike<number>, size = 160): Picture {
  const G = tokens.centres.length / 3;
  const K = tokens.patches.length / 3 / G;
  const width = 2 * size + PANEL_GAP;
  const rgba = new Uint8Array(width * size * 4).fill(255);
  let max = 0;
  for (let g = 0; g < G; g++) max = Math.max(max, weights[g]!);
  const order = Array.from({ length: G }, (_, g) => g).sort((a, b) => weights[a]! - weights[b]!);
  const toPixel = (v: number): number => Math.round(((v + 1.05) / 2.1) * (size - 3));
  const dot = (px: number, py: number, [r, g, b]: [number, number, number]): void => {
    for (let y = py; y < py + 3; y++) {
      for (let x = px; x < px + 3; x++) {
        const o = (y * width + x) * 4;
        [rgba[o], rgba[o + 1], rgba[o + 2]] = [r, g, b];
      }
    }
  };
  for (const g of order) {
    const w = max > 0 ? weights[g]! / max : 0;
    // A faint weight would draw black, like the heaviest dark red: blend towards gray so "little" reads as pale.
    const [r, gr, b] = hot(0.25 + 0.75 * w);
    const colour: [number, number, number] = w < 0.05 ? [200, 200, 200] : [r, gr, b];
    for (let k = 0; k < K; k++) {
      const o = (g * K + k) * 3;
      const [x, y, z] = [0, 1, 2].map((a) => tokens.patches[o + a]! + tokens.centres[g * 3 + a]!) as [number, number, number];
      const py = size - 3 - toPixel(y);
      dot(toPixel(x), py, colour);
      dot(size + PANEL_GAP + toPixel(z), py, colour);
    }
  }
  return { width, height: size, rgba };
}
