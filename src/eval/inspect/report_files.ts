import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../../io/atomic.js';
import { encodePng } from '../../util/png.js';
import { headMatrix } from './attention_maps.js';
import type { InspectReport } from './inspect_decoder.js';
import { barChart, heatGrid } from './picture.js';
import { removalGrid } from './removal_grid.js';

export const escape = (s: string): string => s.replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]!);
const showToken = (t: string): string => escape(JSON.stringify(t).slice(1, -1).replace(/ /g, '␣'));

/** The pictures every report has: each layer's heads side by side, the rollout, and the head-removal grid. */
export function sharedPictures(r: Pick<InspectReport, 'layers' | 'heads' | 'attention' | 'rollout' | 'removal'>): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  for (let l = 0; l < r.layers; l++) {
    files[`attention_layer${l + 1}.png`] = encodePng(heatGrid([Array.from({ length: r.heads }, (_, h) => ({ matrix: headMatrix(r.attention, l, h) }))]));
  }
  files['rollout.png'] = encodePng(heatGrid([[{ matrix: r.rollout }]]));
  const top = new Set(r.removal.costliest.map(([l, h]) => `${l},${h}`));
  // One small square per head: rows are layers, columns heads; red frames mark the costliest.
  files['head_removal.png'] = encodePng(heatGrid(removalGrid(r).map((row, l) => row.map((v, h) => ({ matrix: [[v]], highlight: top.has(`${l},${h}`) }))), 36, 10));
  return files;
}

/** Every picture of the report, by file name. */
export function reportPictures(r: InspectReport): Record<string, Uint8Array> {
  const files = sharedPictures(r);
  files['logit_lens.png'] = encodePng(barChart([r.lens.map((x) => x.loss)], Math.max(...r.lens.map((x) => x.loss))));
  files['probes.png'] = encodePng(barChart([r.probes.layers.map((x) => Math.max(0, x.positionR2)), r.probes.layers.map((x) => x.vowelAccuracy)], 1));
  return files;
}

/** Each layer's attention picture under a heading. */
export const attentionHtml = (r: Pick<InspectReport, 'layers' | 'heads'>): string =>
  Array.from({ length: r.layers }, (_, l) => `<h3>Layer ${l + 1} (heads 1–${r.heads}, left to right)</h3><img src="attention_layer${l + 1}.png" alt="attention maps of layer ${l + 1}">`).join('\n');

/** The head-removal table: each head's loss and change, the costliest marked class="top". */
export function removalTableHtml(r: Pick<InspectReport, 'heads' | 'removal'>): string {
  const top = new Set(r.removal.costliest.map(([l, h]) => `${l},${h}`));
  const rows = r.removal.loss.map((row, l) => `<tr><th>layer ${l + 1}</th>${row.map((v, h) => `<td${top.has(`${l},${h}`) ? ' class="top"' : ''}>${v.toFixed(4)} (${v - r.removal.baseline >= 0 ? '+' : ''}${(v - r.removal.baseline).toFixed(4)})</td>`).join('')}</tr>`).join('\n');
  return `<table><tr><th></th>${Array.from({ length: r.heads }, (_, h) => `<th>head ${h + 1}</th>`).join('')}</tr>\n${rows}</table>`;
}

/** The page's head: title and style. */
export const pageHead = (title: string): string => `<!doctype html>
<html><head><meta charset="utf-8"><title>attn inspect: ${escape(title)}</title>
<style>body{font-family:system-ui,sans-serif;margin:2em;max-width:60em}table{border-collapse:collapse;margin:1em 0}
th,td{border:1px solid #ddd;padding:4px 8px;font-size:13px}th{font-weight:normal;background:#f6f6f6}td.top{background:#fdd;font-weight:bold}
img{image-rendering:pixelated;border:1px solid #eee;max-width:100%}code{background:#f3f3f3;padding:0 3px}</style></head>`;

/** The HTML page that shows the pictures with their tables. */
export function reportHtml(r: InspectReport, title: string): string {
  const tokens = r.mapTokens.map(showToken).join(' · ');
  const attention = attentionHtml(r);
  const lensRows = r.lens.map((x) => `<tr><th>${x.name}</th><td>${x.loss.toFixed(4)}</td><td>${(100 * x.accuracy).toFixed(1)}%</td></tr>`).join('\n');
  const probeRows = r.probes.layers.map((x) => `<tr><th>${x.name}</th><td>${x.positionR2.toFixed(3)}</td><td>${(100 * x.vowelAccuracy).toFixed(1)}%</td></tr>`).join('\n');
  return `${pageHead(title)}
<body><h1>Looking inside ${escape(title)}</h1>
<p>${r.layers} layers × ${r.heads} heads. Tables from ${r.windows} validation windows of ${r.length} tokens, chosen with seed ${r.seed} (the same seed gives the same tables).</p>
<h2>Attention maps</h2><p>Rows: the position that looks; columns: the positions it looks at (dark = more weight). Tokens: <code>${tokens}</code></p>
${attention}
<h2>Attention rollout</h2><p>Heads averaged, the residual path counted as half of each layer, multiplied through the layers: how much each position draws on each input token in the end.</p>
<img src="rollout.png" alt="attention rollout">
<h2>Removing each head</h2><p>Validation loss with one head's output set to zero; intact model: <b>${r.removal.baseline.toFixed(4)}</b>. Red: the ${r.removal.costliest.length} heads whose removal costs most. In the picture, rows are layers, columns heads; blue = the loss rises, orange = it falls.</p>
<img src="head_removal.png" alt="loss increase per removed head">
${removalTableHtml(r)}
<h2>Logit lens</h2><p>The residual stream after each layer read through the final LayerNorm and the output head, as if the model ended there.</p>
<img src="logit_lens.png" alt="loss per layer">
<table><tr><th></th><th>loss</th><th>top-1 accuracy</th></tr>
${lensRows}</table>
<h2>Linear probes</h2><p>A straight line (ridge regression) fitted on ¾ of the windows, scored on the rest. Blue: R² of the position in the window; orange: accuracy of "the next token starts with a vowel" (always guessing the commoner answer: ${(100 * r.probes.vowelBaseline).toFixed(1)}%).</p>
<img src="probes.png" alt="probe scores per layer">
<table><tr><th></th><th>position R²</th><th>next-is-vowel accuracy</th></tr>
${probeRows}</table>
</body></html>
`;
}

/** report.json: every number (the maps rounded to 5 decimals). */
export const reportJson = <R extends { attention: InspectReport['attention'] }>(r: R): string =>
  JSON.stringify({ ...r, attention: { ...r.attention, maps: r.attention.maps.map((m) => Array.from(m, (v) => Number(v.toFixed(5)))) } }) + '\n';

/** Write files into `dir`, each atomically. Returns the file names. */
export function writeReportFiles(dir: string, files: Record<string, Uint8Array | string>): string[] {
  mkdirSync(dir, { recursive: true });
  for (const [name, data] of Object.entries(files)) writeFileAtomic(join(dir, name), data);
  return Object.keys(files);
}

/** Write the report into `dir`: the PNGs, index.html and report.json (each file atomically). Returns the file names. */
export function writeInspectReport(dir: string, r: InspectReport, title: string): string[] {
  return writeReportFiles(dir, { ...reportPictures(r), 'index.html': reportHtml(r, title), 'report.json': reportJson(r) });
}
