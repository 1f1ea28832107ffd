/**
 * The playground's "Looking inside" panel: draws what the worker's
 * inspectGPT found (src/eval/inspect/) — the head-removal picture and table,
 * with the costliest heads highlighted, and the logit lens by layer.
 */
import type { InspectReport } from '../src/eval/inspect/inspect_gpt.js';
import { heatGrid } from '../src/eval/inspect/picture.js';
import { removalGrid } from '../src/eval/inspect/removal_grid.js';

export function showInspection(r: InspectReport, root: HTMLElement): void {
  root.replaceChildren();
  const top = new Set(r.removal.costliest.map(([l, h]) => `${l},${h}`));
  const pic = heatGrid(removalGrid(r).map((row, l) => row.map((v, h) => ({ matrix: [[v]], highlight: top.has(`${l},${h}`) }))), 36, 10);
  const c = document.createElement('canvas');
  c.width = pic.width;
  c.height = pic.height;
  c.setAttribute('aria-label', 'loss increase per removed head');
  c.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(pic.rgba), pic.width, pic.height), 0, 0);
  const p = document.createElement('p');
  p.textContent = `validation loss ${r.removal.baseline.toFixed(4)} (${r.windows} windows of ${r.length}); rows: layers, columns: heads; blue: the loss rises without the head.`;
  const table = document.createElement('table');
  table.id = 'head-removal';
  const head = document.createElement('tr');
  head.append(document.createElement('th'), ...Array.from({ length: r.heads }, (_, h) => Object.assign(document.createElement('th'), { textContent: `head ${h + 1}` })));
  table.append(head);
  r.removal.loss.forEach((row, l) => {
    const tr = document.createElement('tr');
    tr.append(Object.assign(document.createElement('th'), { textContent: `layer ${l + 1}` }));
    row.forEach((v, h) => {
      const td = Object.assign(document.createElement('td'), { textContent: `${v - r.removal.baseline >= 0 ? '+' : ''}${(v - r.removal.baseline).toFixed(4)}` });
      if (top.has(`${l},${h}`)) td.className = 'top';
      tr.append(td);
    });
    table.append(tr);
  });
  const lens = document.createElement('p');
  lens.textContent = `logit lens (loss if the model stopped here): ${r.lens.map((x) => `${x.name} ${x.loss.toFixed(3)}`).join(' · ')}`;
  root.append(p, c, table, lens);
}
