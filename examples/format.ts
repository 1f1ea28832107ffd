/** How the examples print numbers: a vector as "(0.123, −0.456)", a matrix as rows of those. */
export const vec = (xs: ArrayLike<number>, digits = 3): string => `(${Array.from(xs, (v) => v.toFixed(digits)).join(', ')})`;

export const matrix = (rows: ArrayLike<number>[], labels: string[], digits = 3): string =>
  rows.map((r, i) => `  ${labels[i]!.padEnd(6)} ${Array.from(r, (v) => v.toFixed(digits).padStart(digits + 4)).join(' ')}`).join('\n');

/** Rows of a flat row-major array. */
export function rowsOf(flat: ArrayLike<number>, cols: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i < flat.length; i += cols) out.push(Array.from({ length: cols }, (_, j) => flat[i + j]!));
  return out;
}
