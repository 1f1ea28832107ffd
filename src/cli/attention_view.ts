import type { CrossAttentionMap } from '../generate/cross_attention.js';

const SHADES = [' ', '░', '▒', '▓', '█'];

/** Tokens as visible labels: a space piece would be invisible. */
const show = (t: string): string => (t === ' ' ? '␣' : t);

/**
 * A text heat map: source tokens as columns, output tokens as rows, each cell
 * shaded by its weight (blank < 0.125 ≤ ░ < 0.375 ≤ ▒ < 0.625 ≤ ▓ < 0.875 ≤ █).
 */
export function attentionText(matrix: number[][], sourceTokens: string[], targetTokens: string[]): string {
  const cols = sourceTokens.map((t) => Math.max(2, [...show(t)].length));
  const rowWidth = Math.max(...targetTokens.map((t) => [...show(t)].length));
  const pad = (s: string, n: number): string => s + ' '.repeat(Math.max(0, n - [...s].length));
  const header = pad('', rowWidth) + ' │ ' + sourceTokens.map((t, j) => pad(show(t), cols[j]!)).join(' ');
  const rule = '─'.repeat(rowWidth) + '─┼─' + cols.map((w) => '─'.repeat(w)).join('─');
  const rows = matrix.map((row, i) => pad(show(targetTokens[i]!), rowWidth) + ' │ ' + row.map((w, j) => SHADES[Math.min(4, Math.round(w * 4))]!.repeat(cols[j]!)).join(' '));
  return [header, rule, ...rows].join('\n');
}

const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);

/** A standalone HTML page: one table per matrix, cells coloured by weight, exact values on hover. */
export function attentionHtml(items: Array<{ title: string; map: CrossAttentionMap; matrices: Array<{ label: string; matrix: number[][] }> }>): string {
  const table = (m: number[][], src: string[], tgt: string[]): string =>
    '<table><tr><th></th>' + src.map((t) => `<th>${escape(show(t))}</th>`).join('') + '</tr>' +
    m.map((row, i) => `<tr><th>${escape(show(tgt[i]!))}</th>` + row.map((w, j) =>
      `<td style="background:rgba(30,90,200,${w.toFixed(3)})" title="${escape(tgt[i]!)} → ${escape(src[j]!)}: ${w.toFixed(3)}">${w >= 0.05 ? w.toFixed(2) : ''}</td>`).join('') + '</tr>').join('') +
    '</table>';
  const body = items.map(({ title, map, matrices }) =>
    `<h2>${escape(title)}</h2>` + matrices.map(({ label, matrix }) => `<h3>${escape(label)}</h3>` + table(matrix, map.sourceTokens, map.targetTokens)).join('')).join('\n');
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>attn cross-attention</title>
<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse;margin-bottom:2em}
th,td{border:1px solid #ddd;padding:4px 6px;font-size:13px}td{min-width:2.5em;text-align:center}
th{font-weight:normal;background:#f6f6f6}</style></head>
<body><h1>Cross-attention</h1><p>Rows: the tokens the decoder wrote. Columns: the source tokens. Each row is where that step looked (last decoder layer; rows sum to 1).</p>
${body}
</body></html>
`;
}
