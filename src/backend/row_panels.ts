/**
 * Many short rows (retrieval's chunk vectors: 100 000 of 32 or 128 numbers)
 * stored for a fused nearest-rows scan: ROW_PANEL rows at a time, each panel
 * [width][ROW_PANEL] (row p·ROW_PANEL + l's component j at j·ROW_PANEL + l;
 * zero past n), fp32 or int8 with one scale per row. One component of 16 rows
 * is then one vector the query's component multiplies, with no horizontal
 * sums. The native kernel (native/src/row_top.h) keeps each thread's best k
 * while it scans, so no n-long score array is written and read again; the
 * functions here are its reference twins.
 */

/** Rows per panel (native/src/row_top.h's ROW_PANEL). */
export const ROW_PANEL = 16;

export interface RowPanels {
  n: number;
  width: number;
  /** ceil(n / ROW_PANEL) panels of [width][ROW_PANEL]. */
  data: Float32Array | Int8Array;
  /** With int8 data: row r's score is scale[r]·Σ q·x. */
  scale: Float32Array | null;
}

/** Rows m [n × width] (row-major) as fp32 panels. */
export function packRowPanels(m: Float32Array, n: number, width: number): RowPanels {
  if (m.length < n * width) throw new Error(`packRowPanels: ${m.length} numbers for [${n}, ${width}]`);
  const data = new Float32Array(Math.ceil(n / ROW_PANEL) * width * ROW_PANEL);
  for (let r = 0; r < n; r++) {
    const base = (r >> 4) * width * ROW_PANEL + (r & 15);
    for (let j = 0, o = r * width; j < width; j++, o++) data[base + j * ROW_PANEL] = m[o]!;
  }
  return { n, width, data, scale: null };
}

/**
 * Rows m [n × width] as int8 panels: each row scaled by its own largest
 * magnitude to ±127 and rounded, so a row is a quarter of the bytes (a
 * prefix scan's candidates only: whoever needs the exact score rescores).
 */
export function quantizeRowPanels(m: Float32Array, n: number, width: number): RowPanels {
  if (m.length < n * width) throw new Error(`quantizeRowPanels: ${m.length} numbers for [${n}, ${width}]`);
  const data = new Int8Array(Math.ceil(n / ROW_PANEL) * width * ROW_PANEL);
  const scale = new Float32Array(n);
  for (let r = 0; r < n; r++) {
    let max = 0;
    for (let j = 0, o = r * width; j < width; j++, o++) max = Math.max(max, Math.abs(m[o]!));
    const s = max / 127;
    scale[r] = s;
    const base = (r >> 4) * width * ROW_PANEL + (r & 15);
    for (let j = 0, o = r * width; j < width; j++, o++) data[base + j * ROW_PANEL] = s === 0 ? 0 : Math.round(m[o]! / s);
  }
  return { n, width, data, scale };
}

/** Row r's score: its dot product with q (times its scale when int8). */
export function rowPanelScore(p: RowPanels, q: Float32Array, r: number): number {
  const base = (r >> 4) * p.width * ROW_PANEL + (r & 15);
  let s = 0;
  for (let j = 0; j < p.width; j++) s = Math.fround(s + Math.fround(q[j]! * p.data[base + j * ROW_PANEL]!));
  return p.scale ? Math.fround(s * p.scale[r]!) : s;
}

/**
 * The min(k, n) rows with the largest score, best first (equal scores: lower
 * row first) into rows/scores; returns how many. The reference for the
 * native topRows.
 */
export function topRowsWith(q: Float32Array, p: RowPanels, k: number, rows: Int32Array, scores: Float32Array): number {
  if (q.length !== p.width) throw new Error(`query of ${q.length} components for rows of ${p.width}`);
  const all: Array<{ row: number; score: number }> = [];
  for (let r = 0; r < p.n; r++) all.push({ row: r, score: rowPanelScore(p, q, r) });
  return keepBest(all, k, rows, scores);
}

/** The best min(k, count) of the given rows of m [· × width] (row-major fp32), as topRowsWith: the reference for topRowsOf. */
export function topRowsOfWith(q: Float32Array, m: Float32Array, width: number, candidates: Int32Array, count: number, k: number, rows: Int32Array, scores: Float32Array): number {
  const all: Array<{ row: number; score: number }> = [];
  for (let i = 0; i < count; i++) {
    const r = candidates[i]!;
    let s = 0;
    for (let j = 0, o = r * width; j < width; j++, o++) s += q[j]! * m[o]!;
    all.push({ row: r, score: Math.fround(s) });
  }
  return keepBest(all, k, rows, scores);
}

function keepBest(all: Array<{ row: number; score: number }>, k: number, rows: Int32Array, scores: Float32Array): number {
  all.sort((a, b) => b.score - a.score || a.row - b.row);
  const count = Math.max(0, Math.min(k, all.length));
  for (let i = 0; i < count; i++) {
    rows[i] = all[i]!.row;
    scores[i] = all[i]!.score;
  }
  return count;
}
