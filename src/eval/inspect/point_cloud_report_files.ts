import { encodePng } from '../../util/png.js';
import { cloudOverlay } from './cloud_picture.js';
import { probeTable } from './encdec_report_files.js';
import { classifierPictures, classLensHtml } from './classifier_report_files.js';
import type { PointCloudInspectReport } from './inspect_point_cloud.js';
import { attentionHtml, escape, pageHead, removalTableHtml, reportJson, writeReportFiles } from './report_files.js';

/** What a point-cloud classifier's report shows beside the shared pictures: the class token's rollout over the cloud, the lens, the probes. */
export function pointCloudPictures(r: PointCloudInspectReport): Record<string, Uint8Array> {
  const files = classifierPictures(r);
  files['rollout_over_cloud.png'] = encodePng(cloudOverlay(r.cloud.tokens, r.classRollout));
  return files;
}

export function pointCloudReportHtml(r: PointCloudInspectReport, title: string): string {
  return `${pageHead(title)}
<body><h1>Looking inside ${escape(title)}</h1>
<p>A point-cloud classifier: ${r.layers} layers × ${r.heads} heads over the class token and ${r.attention.T - 1} patch tokens (farthest-point centres and their nearest neighbours). Tables from ${r.clouds} test clouds chosen with seed ${r.seed} (the same seed gives the same tables).</p>
<h2>Attention maps</h2><p>On one test cloud (${escape(r.cloud.name)}, class ${escape(r.cloud.label)}). Rows: the token that looks; columns: the tokens it looks at — the class token first, then the patches in the order farthest-point sampling picked them (dark = more weight). No causal mask: every token sees every other.</p>
${attentionHtml(r)}
<h2>Attention rollout</h2><p>Heads averaged, the residual path counted as half of each layer, multiplied through the layers. Below, the class token's row — what the decision draws on in the end — on the cloud itself: left seen from the front (x across, y up), right from the side (z across, y up); each point takes its patch's weight (dark red → yellow → white = more; pale gray = almost none).</p>
<img src="rollout.png" alt="attention rollout"> <img src="rollout_over_cloud.png" alt="the class token's rollout over the cloud">
<h2>Removing each head</h2><p>Test loss (cross-entropy of the class) with one head's output set to zero; intact model: <b>${r.removal.baseline.toFixed(4)}</b>. Red: the ${r.removal.costliest.length} heads whose removal costs most. In the picture, rows are layers, columns heads; blue = the loss rises, orange = it falls.</p>
<img src="head_removal.png" alt="loss increase per removed head">
${removalTableHtml(r)}
${classLensHtml(r)}
<h2>Linear probes</h2><p>A straight line (ridge regression) per layer over the patch tokens (the class token left out), fitted on ¾ of the clouds, scored on the rest (R²). Blue: the height (z) of the patch's centre — the test clouds are turned at random, so this is where the patch is in this cloud, not what it is; orange: its centre's distance from the middle of the cloud (a rotation does not change it); green: the patch's spread, the mean distance of its points from its centre. The embeddings row already holds an MLP of the centre, so where a patch sits is readable from the start; what the layers add shows in the rows below.</p>
<img src="probes.png" alt="probe scores per layer">
${probeTable(r.probes)}
</body></html>
`;
}

/** Write the point-cloud classifier's report into `dir` (each file atomically). Returns the file names. */
export function writePointCloudReport(dir: string, r: PointCloudInspectReport, title: string): string[] {
  const { cloud, ...numbers } = r;
  return writeReportFiles(dir, { ...pointCloudPictures(r), 'index.html': pointCloudReportHtml(r, title), 'report.json': reportJson({ ...numbers, cloud: { name: cloud.name, label: cloud.label } }) });
}
