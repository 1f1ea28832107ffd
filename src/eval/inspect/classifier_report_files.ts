import { encodePng } from '../../util/png.js';
import type { EncoderClassifierReport } from './classifier_report.js';
import { probePicture } from './encdec_report_files.js';
import { barChart } from './picture.js';
import { sharedPictures } from './report_files.js';

/** The pictures every encoder classifier's report has: the shared maps, rollout and removal, the class-token lens, the probes. */
export function classifierPictures(r: EncoderClassifierReport): Record<string, Uint8Array> {
  const files = sharedPictures(r);
  files['logit_lens.png'] = encodePng(barChart([r.lens.map((x) => x.accuracy)], 1));
  files['probes.png'] = probePicture(r.probes);
  return files;
}

/** The class token, layer by layer: the lens section of an encoder classifier's page. */
export function classLensHtml(r: EncoderClassifierReport): string {
  const rows = r.lens.map((x) => `<tr><th>${x.name}</th><td>${x.loss.toFixed(4)}</td><td>${(100 * x.accuracy).toFixed(1)}%</td></tr>`).join('\n');
  return `<h2>The class token, layer by layer</h2><p>The logit lens of a classifier: the class token's vector after each layer read through the final LayerNorm and the class head, as if the model ended there. The bars are the accuracy.</p>
<img src="logit_lens.png" alt="accuracy per layer">
<table><tr><th></th><th>loss</th><th>accuracy</th></tr>
${rows}</table>`;
}
