import { attentionOverlay } from '../../util/attention_overlay.js';
import { encodePng } from '../../util/png.js';
import type { ViTInspectReport } from './inspect_vit.js';
import { probeTable } from './encdec_report_files.js';
import { classifierPictures, classLensHtml } from './classifier_report_files.js';
import { attentionHtml, escape, pageHead, removalTableHtml, reportJson, writeReportFiles } from './report_files.js';

/** What a ViT's report shows beside the decoders' pictures: the class token's rollout over the image, and the lens by layer. */
export function vitPictures(r: ViTInspectReport): Record<string, Uint8Array> {
  const files = classifierPictures(r);
  files['rollout_over_image.png'] = encodePng(attentionOverlay(r.picture, [r.classRollout], 8));
  return files;
}

export function vitReportHtml(r: ViTInspectReport, title: string): string {
  return `${pageHead(title)}
<body><h1>Looking inside ${escape(title)}</h1>
<p>A ViT: ${r.layers} layers × ${r.heads} heads over the class token and ${r.attention.T - 1} patches of ${r.picture.patch}×${r.picture.patch} pixels. Tables from ${r.images} test images chosen with seed ${r.seed} (the same seed gives the same tables).</p>
<h2>Attention maps</h2><p>On one test image (class ${escape(r.picture.label)}). Rows: the token that looks; columns: the tokens it looks at — the class token first, then the patches in reading order (dark = more weight). Every token sees every other: no causal mask in an encoder.</p>
${attentionHtml(r)}
<h2>Attention rollout</h2><p>Heads averaged, the residual path counted as half of each layer, multiplied through the layers. Below, the class token's row — what the decision draws on in the end — laid over the picture (bright = more).</p>
<img src="rollout.png" alt="attention rollout"> <img src="rollout_over_image.png" alt="the class token's rollout over the image">
<h2>Removing each head</h2><p>Test loss (cross-entropy of the class) with one head's output set to zero; intact model: <b>${r.removal.baseline.toFixed(4)}</b>. Red: the ${r.removal.costliest.length} heads whose removal costs most. In the picture, rows are layers, columns heads; blue = the loss rises, orange = it falls.</p>
<img src="head_removal.png" alt="loss increase per removed head">
${removalTableHtml(r)}
${classLensHtml(r)}
<h2>Linear probes</h2><p>A straight line (ridge regression) per layer over every token (the class token and the patches), fitted on ¾ of the images, scored on the rest. Blue: R² of the token's position; orange: R² of its patch's brightness (the class token's: the whole image's).</p>
<img src="probes.png" alt="probe scores per layer">
${probeTable(r.probes)}
</body></html>
`;
}

/** Write the ViT's report into `dir` (each file atomically). Returns the file names. */
export function writeViTReport(dir: string, r: ViTInspectReport, title: string): string[] {
  const { picture, ...numbers } = r;
  const { pixels: _, ...shown } = picture;
  return writeReportFiles(dir, { ...vitPictures(r), 'index.html': vitReportHtml(r, title), 'report.json': reportJson({ ...numbers, picture: shown }) });
}
