import { encodePng } from '../../util/png.js';
import { probePicture, probeTable } from './encdec_report_files.js';
import type { EmbedderInspectReport } from './inspect_embedder.js';
import { barChart } from './picture.js';
import { attentionHtml, escape, pageHead, removalTableHtml, reportJson, sharedPictures, writeReportFiles } from './report_files.js';

export function embedderPictures(r: EmbedderInspectReport): Record<string, Uint8Array> {
  const files = sharedPictures(r);
  files['pooled_rollout.png'] = encodePng(barChart([r.pooledRollout], Math.max(1e-9, ...r.pooledRollout)));
  files['layer_pooling.png'] = encodePng(barChart([r.lens.map((x) => x.accuracy)], 1));
  files['probes.png'] = probePicture(r.probes);
  return files;
}

export function embedderReportHtml(r: EmbedderInspectReport, title: string): string {
  const lensRows = r.lens.map((x) => `<tr><th>${x.name}</th><td>${x.loss.toFixed(4)}</td><td>${(100 * x.accuracy).toFixed(1)}%</td></tr>`).join('\n');
  const shown = r.tokens.map((t) => escape(JSON.stringify(t).slice(1, -1))).join(' · ');
  return `${pageHead(title)}
<body><h1>Looking inside ${escape(title)}</h1>
<p>A sentence embedder: ${r.layers} layers × ${r.heads} heads, no causal mask, the final LayerNorm's vectors averaged over the tokens. Tables from ${r.texts} texts chosen with seed ${r.seed} (the same seed gives the same tables).</p>
<h2>Attention maps</h2><p>On the first chosen text: ${shown}. Rows: the token that looks; columns: the tokens it looks at (dark = more weight).</p>
${attentionHtml(r)}
<h2>Attention rollout</h2><p>Heads averaged, the residual path counted as half of each layer, multiplied through the layers. The bars: the mean of the rollout's rows, each token's share of the mean-pooled vector, in text order.</p>
<img src="rollout.png" alt="attention rollout"> <img src="pooled_rollout.png" alt="each token's share of the pooled vector">
<h2>Removing each head</h2><p>On plain texts an embedder has no loss (its training loss needs pairs), so a head's worth is how far removing it turns the vectors: 1 − the mean cosine between each text's vector with that head's output set to zero and its intact vector (0 = unchanged). Red: the ${r.removal.costliest.length} heads that turn them most.</p>
<img src="head_removal.png" alt="vector change per removed head">
${removalTableHtml(r)}
<h2>Each layer pooled</h2><p>No vocabulary head to read a layer through, so the lens of an embedder: each layer's vectors through the final LayerNorm and the mean, as if the model ended there. Loss: 1 − the mean cosine to the final embedding; the bars: how often that vector finds its own text's final embedding nearest among the ${r.texts}.</p>
<img src="layer_pooling.png" alt="retrieval accuracy per layer">
<table><tr><th></th><th>1 − cosine</th><th>finds its own text</th></tr>
${lensRows}</table>
<h2>Linear probes</h2><p>Per layer over every real token (padding left out), fitted on ¾ of the texts, scored on the rest. Blue: R² of the token's position; orange: accuracy of "the token begins with white space" (a word's start).</p>
<img src="probes.png" alt="probe scores per layer">
${probeTable(r.probes)}
</body></html>
`;
}

export function writeEmbedderReport(dir: string, r: EmbedderInspectReport, title: string): string[] {
  return writeReportFiles(dir, { ...embedderPictures(r), 'index.html': embedderReportHtml(r, title), 'report.json': reportJson(r) });
}
