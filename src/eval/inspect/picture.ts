import type { Picture } from '../../util/png.js';

/**
 * Pictures of the inspection's numbers, as RGBA pixels (written as PNG by
 * report_files.ts, or put on a canvas): grids of heat maps and bar charts.
 * No fonts: labels belong to the HTML around the picture.
 */

/** A blank white picture. */
function canvas(width: number, height: number): Picture {
  return { width, height, rgba: new Uint8Array(width * height * 4).fill(255) };
}

function fillRect(p: Picture, x0: number, y0: number, w: number, h: number, [r, g, b]: [number, number, number]): void {
  for (let y = Math.max(0, y0); y < Math.min(p.height, y0 + h); y++) {
    for (let x = Math.max(0, x0); x < Math.min(p.width, x0 + w); x++) {
      const i = (y * p.width + x) * 4;
      p.rgba[i] = r;
      p.rgba[i + 1] = g;
      p.rgba[i + 2] = b;
      p.rgba[i + 3] = 255;
    }
  }
}

/** 0 → white, 1 → deep blue; −1 → deep orange (a value below zero: removing a head that helps). */
export function shade(v: number): [number, number, number] {
  const t = Math.min(1, Math.abs(v));
  const to: [number, number, number] = v >= 0 ? [20, 70, 180] : [220, 110, 20];
  return [Math.round(255 + (to[0] - 255) * t), Math.round(255 + (to[1] - 255) * t), Math.round(255 + (to[2] - 255) * t)];
}

export const HIGHLIGHT: [number, number, number] = [220, 30, 30];

export interface HeatCell {
  /** Values in −1…1 (scale them first). */
  matrix: number[][];
  /** Drawn with a red frame. */
  highlight?: boolean;
}

/** Heat maps side by side in rows (grid[row][col]), each value a square of `cell` pixels, `gap` pixels apart. */
export function heatGrid(grid: HeatCell[][], cell = 12, gap = 8): Picture {
  const rowsOf = (m: number[][]): number => m.length;
  const colsOf = (m: number[][]): number => m[0]?.length ?? 0;
  const mapW = Math.max(...grid.flat().map((c) => colsOf(c.matrix))) * cell;
  const mapH = Math.max(...grid.flat().map((c) => rowsOf(c.matrix))) * cell;
  const cols = Math.max(...grid.map((r) => r.length));
  const p = canvas(gap + cols * (mapW + gap), gap + grid.length * (mapH + gap));
  grid.forEach((row, gi) => row.forEach((c, gj) => {
    const x0 = gap + gj * (mapW + gap);
    const y0 = gap + gi * (mapH + gap);
    if (c.highlight) fillRect(p, x0 - 3, y0 - 3, colsOf(c.matrix) * cell + 6, rowsOf(c.matrix) * cell + 6, HIGHLIGHT);
    fillRect(p, x0 - 1, y0 - 1, colsOf(c.matrix) * cell + 2, rowsOf(c.matrix) * cell + 2, [200, 200, 200]);
    c.matrix.forEach((r, i) => r.forEach((v, j) => fillRect(p, x0 + j * cell, y0 + i * cell, cell, cell, shade(v))));
  }));
  return p;
}

/** Vertical bars for values in 0…max, in groups (one colour per series), `height` pixels tall. */
export function barChart(series: number[][], max: number, { height = 160, bar = 18, gap = 10 } = {}): Picture {
  const COLORS: Array<[number, number, number]> = [[20, 70, 180], [220, 110, 20], [40, 150, 70]];
  const groups = Math.max(...series.map((s) => s.length));
  const groupW = series.length * bar + gap;
  const p = canvas(gap + groups * groupW, height + 2 * gap);
  fillRect(p, 0, gap + height, p.width, 1, [120, 120, 120]);
  for (let g = 0; g < groups; g++) {
    series.forEach((s, k) => {
      const v = Math.max(0, Math.min(1, (s[g] ?? 0) / (max || 1)));
      const h = Math.round(v * height);
      fillRect(p, gap + g * groupW + k * bar, gap + height - h, bar - 2, h, COLORS[k % COLORS.length]!);
    });
  }
  return p;
}
