/**
 * Small drawing helpers shared by the article's pages: elements, a canvas,
 * bars, a labelled heat map, line charts. Each page computes its numbers with
 * the example's own functions (examples/*.ts) and draws them with these.
 */

export function el<K extends keyof HTMLElementTagNameMap>(tag: K, text = '', cls = ''): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (text) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

export function canvas(parent: HTMLElement, width: number, height: number, label: string): CanvasRenderingContext2D {
  const c = el('canvas');
  c.width = width;
  c.height = height;
  c.setAttribute('aria-label', label);
  parent.append(c);
  return c.getContext('2d')!;
}

const BLUE = '#1f4fb4';
const ORANGE = '#dc6e14';
export const COLORS = [BLUE, ORANGE, '#2a9646', '#8a3ab9', '#b43a3a'];

/** Labelled vertical bars, values in 0…max. */
export function bars(ctx: CanvasRenderingContext2D, values: number[], labels: string[], max = Math.max(...values.map(Math.abs), 1e-9), color = BLUE): void {
  const { width: W, height: H } = ctx.canvas;
  ctx.clearRect(0, 0, W, H);
  const bw = W / values.length;
  const zero = values.some((v) => v < 0) ? H / 2 : H - 20;
  ctx.font = '12px system-ui, sans-serif';
  ctx.textAlign = 'center';
  values.forEach((v, i) => {
    const h = (v / max) * (zero - 18);
    ctx.fillStyle = color;
    ctx.fillRect(i * bw + 4, h >= 0 ? zero - h : zero, bw - 8, Math.abs(h));
    ctx.fillStyle = '#222';
    ctx.fillText(v.toFixed(3), i * bw + bw / 2, (h >= 0 ? zero - h : zero - h + 12) - 3);
    ctx.fillText(labels[i] ?? '', i * bw + bw / 2, H - 5);
  });
  ctx.fillStyle = '#888';
  ctx.fillRect(0, zero, W, 1);
}

/** A heat map with row and column labels; values shown in each cell. Negative values orange, positive blue. */
export function heatmap(ctx: CanvasRenderingContext2D, m: number[][], rows: string[], cols: string[], max = Math.max(...m.flat().map(Math.abs), 1e-9)): void {
  const { width: W, height: H } = ctx.canvas;
  ctx.clearRect(0, 0, W, H);
  const pad = 46;
  const cw = (W - pad) / (m[0]?.length ?? 1);
  const ch = (H - 20) / m.length;
  ctx.font = '12px system-ui, sans-serif';
  ctx.textAlign = 'center';
  ctx.textBaseline = 'middle';
  cols.forEach((c, j) => { ctx.fillStyle = '#222'; ctx.fillText(c, pad + j * cw + cw / 2, 10); });
  m.forEach((row, i) => {
    ctx.fillStyle = '#222';
    ctx.fillText(rows[i] ?? '', pad / 2, 20 + i * ch + ch / 2);
    row.forEach((v, j) => {
      const t = Math.min(1, Math.abs(v) / max);
      ctx.fillStyle = v >= 0 ? `rgba(31,79,180,${t})` : `rgba(220,110,20,${t})`;
      ctx.fillRect(pad + j * cw, 20 + i * ch, cw - 1, ch - 1);
      ctx.fillStyle = t > 0.55 ? '#fff' : '#222';
      if (cw > 34) ctx.fillText(v.toFixed(2), pad + j * cw + cw / 2, 20 + i * ch + ch / 2);
    });
  });
}

/** Line chart of several series over the same x (their index), with a shared y range. */
export function lines(ctx: CanvasRenderingContext2D, series: number[][], names: string[], yLog = false): void {
  const { width: W, height: H } = ctx.canvas;
  ctx.clearRect(0, 0, W, H);
  const f = (v: number): number => (yLog ? Math.log10(Math.max(v, 1e-12)) : v);
  const all = series.flat().map(f);
  const [lo, hi] = [Math.min(...all), Math.max(...all)];
  const n = Math.max(...series.map((s) => s.length));
  const x = (i: number): number => 30 + (i / Math.max(1, n - 1)) * (W - 40);
  const y = (v: number): number => H - 20 - ((f(v) - lo) / (hi - lo || 1)) * (H - 40);
  ctx.strokeStyle = '#bbb';
  ctx.strokeRect(30, 20, W - 40, H - 40);
  series.forEach((s, k) => {
    ctx.strokeStyle = COLORS[k % COLORS.length]!;
    ctx.lineWidth = 2;
    ctx.beginPath();
    s.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
    ctx.stroke();
    ctx.fillStyle = COLORS[k % COLORS.length]!;
    ctx.font = '12px system-ui, sans-serif';
    ctx.textAlign = 'left';
    ctx.fillText(names[k] ?? '', 36 + k * 150, 14);
  });
}

/** A plain table: header row, then rows. */
export function table(parent: HTMLElement, head: string[], rows: Array<Array<string | number>>): void {
  const t = el('table');
  const tr = el('tr');
  head.forEach((h) => tr.append(el('th', h)));
  t.append(tr);
  for (const r of rows) {
    const row = el('tr');
    r.forEach((c) => row.append(el('td', typeof c === 'number' ? c.toFixed(3) : c)));
    t.append(row);
  }
  parent.append(t);
}

export const fmt = (xs: ArrayLike<number>, d = 3): string => `(${Array.from(xs, (v) => v.toFixed(d)).join(', ')})`;
