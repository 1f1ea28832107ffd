import type { InspectReport } from './inspect_decoder.js';

/** The head-removal picture's values: each head's loss increase, scaled by the largest (rows: layers, columns: heads). */
export function removalGrid(r: Pick<InspectReport, 'removal'>): number[][] {
  const deltas = r.removal.loss.map((row) => row.map((v) => v - r.removal.baseline));
  const max = Math.max(1e-9, ...deltas.flat().map(Math.abs));
  return deltas.map((row) => row.map((d) => d / max));
}
