import { encodePng } from '../../util/png.js';
import { headMatrix } from './attention_maps.js';
import { ATTENTION_KINDS, type AttentionKind } from './encoder_decoder_view.js';
import type { EncDecInspectReport } from './inspect_encoder_decoder.js';
import { barChart, heatGrid } from './picture.js';
import type { ProbeTable } from './layer_probes.js';
import { escape, pageHead, reportJson, writeReportFiles } from './report_files.js';

const FILE: Record<AttentionKind, string> = { encoder: 'encoder', self: 'decoder_self', cross: 'cross' };
const TITLE: Record<AttentionKind, string> = {
  encoder: 'Encoder self-attention (source × source; no mask)',
  self: 'Decoder self-attention (target × target; causal)',
  cross: 'Cross-attention (rows: target positions, columns: source positions)',
};
const label = (t: string): string => escape(JSON.stringify(t).slice(1, -1).replace(/ /g, '␣'));

/** Each kind's loss increase per head, scaled by the largest over all kinds (so the three pictures compare). */
function removalGrids(r: EncDecInspectReport): Record<AttentionKind, number[][]> {
  const deltas = Object.fromEntries(ATTENTION_KINDS.map((k) => [k, r.removal.kinds[k].loss.map((row) => row.map((v) => v - r.removal.baseline))])) as Record<AttentionKind, number[][]>;
  const max = Math.max(1e-9, ...ATTENTION_KINDS.flatMap((k) => deltas[k].flat().map(Math.abs)));
  return Object.fromEntries(ATTENTION_KINDS.map((k) => [k, deltas[k].map((row) => row.map((d) => d / max))])) as Record<AttentionKind, number[][]>;
}

/** Bars per layer: a number target's R² (clipped at 0), a yes/no target's accuracy. */
export const probePicture = (p: ProbeTable): Uint8Array => encodePng(barChart(p.targets.map((_, k) => p.layers.map((x) => Math.max(0, x.scores[k]!))), 1));

export function encDecPictures(r: EncDecInspectReport): Record<string, Uint8Array> {
  const files: Record<string, Uint8Array> = {};
  for (const kind of ATTENTION_KINDS) {
    const m = r.attention[kind];
    for (let l = 0; l < m.layers; l++) files[`${FILE[kind]}_layer${l + 1}.png`] = encodePng(heatGrid([Array.from({ length: m.heads }, (_, h) => ({ matrix: headMatrix(m, l, h) }))]));
  }
  files['rollout_encoder.png'] = encodePng(heatGrid([[{ matrix: r.rollout.encoder }]]));
  files['rollout_cross.png'] = encodePng(heatGrid([[{ matrix: r.rollout.cross }]]));
  const grids = removalGrids(r);
  const top = new Set(r.removal.costliest.map(([k, l, h]) => `${k},${l},${h}`));
  for (const kind of ATTENTION_KINDS) {
    files[`head_removal_${FILE[kind]}.png`] = encodePng(heatGrid(grids[kind].map((row, l) => row.map((v, h) => ({ matrix: [[v]], highlight: top.has(`${kind},${l},${h}`) }))), 36, 10));
  }
  files['logit_lens.png'] = encodePng(barChart([r.lens.map((x) => x.loss)], Math.max(...r.lens.map((x) => x.loss))));
  files['probes_encoder.png'] = probePicture(r.probes.encoder);
  files['probes_decoder.png'] = probePicture(r.probes.decoder);
  return files;
}

function removalTable(r: EncDecInspectReport, kind: AttentionKind): string {
  const top = new Set(r.removal.costliest.map(([k, l, h]) => `${k},${l},${h}`));
  const b = r.removal.baseline;
  const rows = r.removal.kinds[kind].loss.map((row, l) => `<tr><th>layer ${l + 1}</th>${row.map((v, h) => `<td${top.has(`${kind},${l},${h}`) ? ' class="top"' : ''}>${v.toFixed(4)} (${v - b >= 0 ? '+' : ''}${(v - b).toFixed(4)})</td>`).join('')}</tr>`).join('\n');
  return `<table><tr><th></th>${Array.from({ length: r.heads }, (_, h) => `<th>head ${h + 1}</th>`).join('')}</tr>\n${rows}</table>`;
}

export function probeTable(p: ProbeTable): string {
  const head = p.targets.map((t) => `<th>${escape(t.name)} (${t.binary ? `accuracy; always the commoner: ${(100 * t.baseline!).toFixed(1)}%` : 'R²'})</th>`).join('');
  const rows = p.layers.map((x) => `<tr><th>${x.name}</th>${x.scores.map((s, k) => `<td>${p.targets[k]!.binary ? `${(100 * s).toFixed(1)}%` : s.toFixed(3)}</td>`).join('')}</tr>`).join('\n');
  return `<table><tr><th></th>${head}</tr>\n${rows}</table>`;
}

export function encDecReportHtml(r: EncDecInspectReport, title: string, what: { model: string; source: string; target: string }): string {
  const maps = ATTENTION_KINDS.map((kind) => `<h3>${TITLE[kind]}</h3>` + Array.from({ length: r.attention[kind].layers }, (_, l) =>
    `<p>Layer ${l + 1} (heads 1–${r.heads}, left to right)</p><img src="${FILE[kind]}_layer${l + 1}.png" alt="${kind} attention of layer ${l + 1}">`).join('\n')).join('\n');
  const removal = ATTENTION_KINDS.map((kind) => `<h3>${TITLE[kind].replace(/ \(.*/, '')}</h3><img src="head_removal_${FILE[kind]}.png" alt="loss increase per removed ${kind} head">\n${removalTable(r, kind)}`).join('\n');
  const lensRows = r.lens.map((x) => `<tr><th>${x.name}</th><td>${x.loss.toFixed(4)}</td><td>${(100 * x.accuracy).toFixed(1)}%</td></tr>`).join('\n');
  return `${pageHead(title)}
<body><h1>Looking inside ${escape(title)}</h1>
<p>${what.model}: ${r.encoderLayers} encoder layers, ${r.decoderLayers} decoder layers, ${r.heads} heads each. Tables from ${r.examples} validation examples chosen with seed ${r.seed} (the same seed gives the same tables).</p>
<h2>Attention maps</h2><p>On the first chosen example. ${what.source}: <code>${r.srcLabels.map(label).join(' · ')}</code>. ${what.target}: <code>${r.tgtLabels.map(label).join(' · ')}</code>. Rows: the position that looks; columns: the positions it looks at (dark = more weight).</p>
${maps}
<h2>Attention rollout</h2><p>Left: the encoder's rollout (heads averaged, the residual path counted as half of each layer, multiplied through the layers). Right: the decoder's, carried through cross-attention back to the source — each target position's share drawn on each source position in the end (causal self-attention and the residual keep halves as in the rollout; cross-attention's half is traced through the encoder's rollout; see docs/inspect.md).</p>
<img src="rollout_encoder.png" alt="encoder rollout"> <img src="rollout_cross.png" alt="target × source rollout">
<h2>Removing each head</h2><p>Validation loss (the decoder's cross-entropy on the targets) with one head's output set to zero; intact model: <b>${r.removal.baseline.toFixed(4)}</b>. Red: the ${r.removal.costliest.length} heads whose removal costs most, over all three kinds. Rows are layers, columns heads; blue = the loss rises, orange = it falls; the three pictures share one scale.</p>
${removal}
<h2>Logit lens</h2><p>The decoder's stream after each layer read through the final norm and the output projection, as if the decoder ended there.</p>
<img src="logit_lens.png" alt="loss per decoder layer">
<table><tr><th></th><th>loss</th><th>top-1 accuracy</th></tr>
${lensRows}</table>
<h2>Linear probes</h2><p>A straight line (ridge regression) per layer fitted on the first ¾ of the examples, scored on the rest (padding left out). Bars: blue the first column, orange the second.</p>
<h3>Encoder</h3><img src="probes_encoder.png" alt="encoder probes">
${probeTable(r.probes.encoder)}
<h3>Decoder</h3><img src="probes_decoder.png" alt="decoder probes">
${probeTable(r.probes.decoder)}
</body></html>
`;
}

/** Write the report into `dir` (each file atomically); `extra` adds pictures of one model kind. Returns the file names. */
export function writeEncDecReport(dir: string, r: EncDecInspectReport, title: string, what: { model: string; source: string; target: string }, extra: Record<string, Uint8Array> = {}): string[] {
  const json = JSON.stringify({ ...r, attention: Object.fromEntries(ATTENTION_KINDS.map((k) => [k, JSON.parse(reportJson({ attention: r.attention[k] })).attention])) }) + '\n';
  return writeReportFiles(dir, { ...encDecPictures(r), ...extra, 'index.html': encDecReportHtml(r, title, what), 'report.json': json });
}
