/**
 * The playground's "Looking inside" panel: draws what the worker's
 * inspectDecoder found (src/eval/inspect/) — the head-removal picture and table,
 * with the costliest heads highlighted, the attention rollout, the logit lens
 * and the linear probes by layer. The pictures are the ones `attn inspect`
 * writes as PNG (report_files.ts), put on canvases.
 */
import type { InspectReport } from '../src/eval/inspect/inspect_decoder.js';
import { barChart, heatGrid } from '../src/eval/inspect/picture.js';
import { removalGrid } from '../src/eval/inspect/removal_grid.js';
import type { Picture } from '../src/util/png.js';

function picture(pic: Picture, label: string): HTMLCanvasElement {
  const c = document.createElement('canvas');
  c.width = pic.width;
  c.height = pic.height;
  c.setAttribute('aria-label', label);
  c.style.width = `${Math.min(pic.width, 420)}px`; // small pictures stay crisp, not stretched across the panel
  c.style.imageRendering = 'pixelated';
  c.getContext('2d')!.putImageData(new ImageData(new Uint8ClampedArray(pic.rgba), pic.width, pic.height), 0, 0);
  return c;
}

const el = <K extends keyof HTMLElementTagNameMap>(tag: K, text = ''): HTMLElementTagNameMap[K] => Object.assign(document.createElement(tag), { textContent: text });

/** A table with a header row; `top` marks cells to highlight. */
function table(id: string, head: string[], rows: Array<{ name: string; cells: string[]; top?: boolean[] }>): HTMLTableElement {
  const t = el('table');
  t.id = id;
  const tr = el('tr');
  tr.append(el('th'), ...head.map((h) => el('th', h)));
  t.append(tr);
  for (const r of rows) {
    const row = el('tr');
    row.append(el('th', r.name));
    r.cells.forEach((c, i) => {
      const td = el('td', c);
      if (r.top?.[i]) td.className = 'top';
      row.append(td);
    });
    t.append(row);
  }
  return t;
}

export function showInspection(r: InspectReport, root: HTMLElement): void {
  root.replaceChildren();
  const top = new Set(r.removal.costliest.map(([l, h]) => `${l},${h}`));
  const signed = (d: number): string => `${d >= 0 ? '+' : ''}${d.toFixed(4)}`;

  root.append(el('h3', 'Removing each head'));
  root.append(el('p', `validation loss ${r.removal.baseline.toFixed(4)} (${r.windows} windows of ${r.length}); rows: layers, columns: heads; blue: the loss rises without the head.`));
  root.append(picture(heatGrid(removalGrid(r).map((row, l) => row.map((v, h) => ({ matrix: [[v]], highlight: top.has(`${l},${h}`) }))), 36, 10), 'loss increase per removed head'));
  root.append(table('head-removal', Array.from({ length: r.heads }, (_, h) => `head ${h + 1}`), r.removal.loss.map((row, l) => ({
    name: `layer ${l + 1}`,
    cells: row.map((v) => signed(v - r.removal.baseline)),
    top: row.map((_, h) => top.has(`${l},${h}`)),
  }))));

  root.append(el('h3', 'Attention rollout'));
  root.append(el('p', `Heads averaged, the residual path counted as half of each layer, multiplied through the layers: how much each position (row) draws on each token (column) of "${r.mapTokens.join('')}".`));
  const rollout = picture(heatGrid([[{ matrix: r.rollout }]], 10, 6), 'attention rollout');
  rollout.id = 'rollout';
  root.append(rollout);

  root.append(el('h3', 'Logit lens'));
  const lens = el('p', `logit lens (loss if the model stopped here): ${r.lens.map((x) => `${x.name} ${x.loss.toFixed(3)}`).join(' · ')}`);
  root.append(lens, picture(barChart([r.lens.map((x) => x.loss)], Math.max(...r.lens.map((x) => x.loss)), { height: 80 }), 'logit lens loss per layer'));

  root.append(el('h3', 'Linear probes'));
  root.append(el('p', `A straight line fitted on ¾ of the windows, scored on the rest: can each layer's vectors tell the position (R²) and whether the next character is a vowel (always guessing the commoner answer: ${(100 * r.probes.vowelBaseline).toFixed(1)}%)?`));
  root.append(table('probes', ['position R²', 'next is a vowel'], r.probes.layers.map((x) => ({ name: x.name, cells: [x.positionR2.toFixed(3), `${(100 * x.vowelAccuracy).toFixed(1)}%`] }))));
}
