/**
 * The playground page: controls, the loss chart, generation with probability bars,
 * the attention heatmap and model files. No model work happens here — it is all
 * in web/worker.ts, so the page stays responsive while the model trains.
 */
import { fablesCorpus } from '../src/data/fables.js';
import { DEFAULT_TRAIN, type AttentionMaps, type ModelFiles, type ModelSizes } from './lib/session.js';
import type { FromWorker, ToWorker } from './protocol.js';
import { showInspection } from './inspect_panel.js';

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => document.getElementById(id) as T;
const worker = new Worker(new URL('./worker.ts', import.meta.url), { type: 'module' });
const send = (m: ToWorker): void => worker.postMessage(m);

// ---- state ----
const stepLosses: Array<[number, number]> = [];
const evals: Array<{ step: number; train: number; val: number }> = [];
let maps: AttentionMaps | null = null;
let running = false;
let generating = false;
let trainable = true;

// ---- errors ----
let errorTimer = 0;
function showError(message: string): void {
  const el = $('error');
  el.textContent = message;
  el.hidden = false;
  clearTimeout(errorTimer);
  errorTimer = window.setTimeout(() => (el.hidden = true), 6000);
}

// ---- model setup ----
const num = (id: string): number => Number($<HTMLInputElement>(id).value);
/** A new model replaces the old one: its curves start again (messages come in order, so this follows any stale ones). */
function clearCurves(): void {
  stepLosses.length = 0;
  evals.length = 0;
  drawChart();
  for (const id of ['stat-loss', 'stat-train', 'stat-val', 'stat-tps']) $(id).textContent = '–';
  $('stat-step').textContent = '0';
}

function reset(): void {
  const text = $<HTMLTextAreaElement>('text').value;
  send({
    type: 'init',
    text,
    sizes: { n_layer: num('n-layer'), n_head: num('n-head'), n_embd: num('n-embd'), block_size: num('block-size') },
    train: { ...DEFAULT_TRAIN, lr: num('lr') || DEFAULT_TRAIN.lr },
  });
}

function setRunning(r: boolean): void {
  running = r;
  $<HTMLButtonElement>('start').disabled = r || !trainable;
  $<HTMLButtonElement>('pause').disabled = !r;
}

function setGenerating(g: boolean): void {
  generating = g;
  $<HTMLButtonElement>('generate').disabled = g;
  $<HTMLButtonElement>('stop').disabled = !g;
}

// ---- the loss chart (a canvas, drawn by hand) ----
function drawChart(): void {
  const canvas = $<HTMLCanvasElement>('loss-chart');
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || 640;
  const h = Math.round(w * 0.42);
  if (canvas.width !== Math.round(w * dpr)) {
    canvas.width = Math.round(w * dpr);
    canvas.height = Math.round(h * dpr);
  }
  const ctx = canvas.getContext('2d')!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, w, h);
  const pad = { l: 44, r: 12, t: 10, b: 30 };
  const maxStep = Math.max(10, stepLosses.at(-1)?.[0] ?? 0, evals.at(-1)?.step ?? 0);
  const ys = [...stepLosses.map((p) => p[1]), ...evals.flatMap((e) => [e.train, e.val])].filter(Number.isFinite);
  const yMax = ys.length ? Math.max(...ys) * 1.05 : 5;
  const yMin = ys.length ? Math.max(0, Math.min(...ys) * 0.9) : 0;
  const x = (s: number): number => pad.l + (s / maxStep) * (w - pad.l - pad.r);
  const y = (v: number): number => pad.t + (1 - (v - yMin) / (yMax - yMin || 1)) * (h - pad.t - pad.b);
  ctx.font = '12px system-ui, sans-serif';
  ctx.fillStyle = '#5f6368';
  ctx.strokeStyle = '#e4e4de';
  ctx.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const v = yMin + ((yMax - yMin) * i) / 4;
    ctx.beginPath();
    ctx.moveTo(pad.l, y(v));
    ctx.lineTo(w - pad.r, y(v));
    ctx.stroke();
    ctx.textAlign = 'right';
    ctx.fillText(v.toFixed(2), pad.l - 6, y(v) + 4);
  }
  ctx.textAlign = 'center';
  for (let i = 0; i <= 4; i++) ctx.fillText(String(Math.round((maxStep * i) / 4)), x((maxStep * i) / 4), h - 10);
  ctx.textAlign = 'left';
  ctx.fillText('step', 4, h - 10);
  const line = (pts: Array<[number, number]>, color: string, width: number): void => {
    if (!pts.length) return;
    ctx.strokeStyle = color;
    ctx.lineWidth = width;
    ctx.beginPath();
    pts.forEach(([s, v], i) => (i ? ctx.lineTo(x(s), y(v)) : ctx.moveTo(x(s), y(v))));
    ctx.stroke();
    if (pts.length === 1) {
      ctx.fillStyle = color;
      ctx.fillRect(x(pts[0]![0]) - 2, y(pts[0]![1]) - 2, 4, 4);
    }
  };
  line(stepLosses, '#9db4e6', 1);
  line(evals.map((e) => [e.step, e.train]), '#2256c7', 2);
  line(evals.map((e) => [e.step, e.val]), '#d2451e', 2);
  // for tests and curious readers: what the chart shows
  canvas.dataset.points = String(stepLosses.length);
  canvas.dataset.evals = JSON.stringify(evals.map((e) => [e.step, +e.train.toFixed(4), +e.val.toFixed(4)]));
}

// ---- generation ----
function renderBars(t: Extract<FromWorker, { type: 'token' }>): void {
  const bars = $('bars');
  bars.replaceChildren(
    ...t.top.map((c) => {
      const row = document.createElement('div');
      row.className = 'bar' + (c.id === t.id ? ' chosen' : '');
      const tok = document.createElement('span');
      tok.className = 'tok';
      tok.textContent = JSON.stringify(c.text).slice(1, -1).replace(/^ $/, '␣');
      const track = document.createElement('span');
      const fill = document.createElement('span');
      fill.className = 'fill';
      fill.style.display = 'block';
      fill.style.width = `${(c.p * 100).toFixed(1)}%`;
      track.append(fill);
      const p = document.createElement('span');
      p.textContent = `${(c.p * 100).toFixed(1)}%`;
      row.append(tok, track, p);
      row.title = `${JSON.stringify(c.text)}: p = ${c.p.toFixed(4)}${c.id === t.id ? ' (sampled)' : ''}`;
      return row;
    }),
  );
  $('bars-step').textContent = `(token ${t.index + 1}; sampled one in orange)`;
}

function appendToken(text: string): void {
  const out = $('output');
  out.querySelector('.new')?.classList.remove('new');
  const span = document.createElement('span');
  span.className = 'new';
  span.textContent = text;
  out.append(span);
  out.scrollTop = out.scrollHeight;
}

// ---- attention heatmap ----
function fillSelect(id: string, n: number, prefix: string): void {
  const sel = $<HTMLSelectElement>(id);
  const keep = Math.min(Number(sel.value) || 0, n - 1);
  sel.replaceChildren(...Array.from({ length: n }, (_, i) => new Option(`${prefix} ${i}`, String(i))));
  sel.value = String(keep);
}

const CELL = { min: 14, max: 36 };
function heatmapGeometry(): { T: number; cell: number; left: number; top: number } {
  const T = maps!.tokens.length;
  const cell = Math.max(CELL.min, Math.min(CELL.max, Math.floor(440 / T)));
  return { T, cell, left: 34, top: 34 };
}

function drawHeatmap(): void {
  if (!maps) return;
  const canvas = $<HTMLCanvasElement>('heatmap');
  const { T, cell, left, top } = heatmapGeometry();
  const size = left + T * cell + 4;
  const dpr = window.devicePixelRatio || 1;
  canvas.width = size * dpr;
  canvas.height = size * dpr;
  canvas.style.maxWidth = `${size}px`;
  const ctx = canvas.getContext('2d')!;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, size, size);
  const l = Number($<HTMLSelectElement>('layer').value);
  const h = Number($<HTMLSelectElement>('head').value);
  const base = (l * maps.nHead + h) * T * T;
  for (let i = 0; i < T; i++) {
    for (let j = 0; j < T; j++) {
      const px = left + j * cell;
      const py = top + i * cell;
      if (j > i) {
        ctx.fillStyle = '#eeeeea'; // masked: the future
        ctx.fillRect(px, py, cell - 1, cell - 1);
        continue;
      }
      const w = maps.weights[base + i * T + j]!;
      const c = Math.round(255 * (1 - w));
      ctx.fillStyle = `rgb(${c}, ${Math.round(255 - w * 170)}, 255)`;
      ctx.fillRect(px, py, cell - 1, cell - 1);
    }
  }
  ctx.fillStyle = '#1d1d1f';
  ctx.font = `${Math.min(13, cell - 2)}px ui-monospace, monospace`;
  ctx.textAlign = 'center';
  maps.tokens.forEach((t, k) => {
    const label = t === ' ' ? '␣' : t === '\n' ? '↵' : t;
    ctx.fillText(label, left + k * cell + cell / 2, top - 8); // keys across the top
    ctx.fillText(label, left / 2, top + k * cell + cell / 2 + 4); // queries down the side
  });
  canvas.dataset.layer = String(l);
  canvas.dataset.head = String(h);
  canvas.dataset.tokens = String(T);
}

function hoverHeatmap(ev: MouseEvent): void {
  const tip = $('tooltip');
  if (!maps) return void (tip.hidden = true);
  const canvas = $<HTMLCanvasElement>('heatmap');
  const rect = canvas.getBoundingClientRect();
  const scale = canvas.width / (window.devicePixelRatio || 1) / rect.width;
  const { T, cell, left, top } = heatmapGeometry();
  const j = Math.floor(((ev.clientX - rect.left) * scale - left) / cell);
  const i = Math.floor(((ev.clientY - rect.top) * scale - top) / cell);
  if (i < 0 || j < 0 || i >= T || j >= T) return void (tip.hidden = true);
  const l = Number($<HTMLSelectElement>('layer').value);
  const h = Number($<HTMLSelectElement>('head').value);
  const w = maps.weights[(l * maps.nHead + h) * T * T + i * T + j]!;
  tip.textContent = `query ${i} ${JSON.stringify(maps.tokens[i])} → key ${j} ${JSON.stringify(maps.tokens[j])}\n` + (j > i ? 'masked (future token): 0' : `weight ${w.toFixed(4)}`);
  tip.style.left = `${ev.clientX - rect.left + 12}px`;
  tip.style.top = `${ev.clientY - rect.top + 12}px`;
  tip.hidden = false;
}

// ---- model files ----
async function loadFiles(list: FileList | File[]): Promise<void> {
  const byName = new Map(Array.from(list, (f) => [f.name, f]));
  const missing = ['config.json', 'model.safetensors', 'tokenizer.json'].filter((n) => !byName.has(n));
  if (missing.length) return showError(`missing ${missing.join(', ')}: drop all three files of a model directory`);
  const files: ModelFiles = {
    'config.json': await byName.get('config.json')!.text(),
    'model.safetensors': new Uint8Array(await byName.get('model.safetensors')!.arrayBuffer()),
    'tokenizer.json': await byName.get('tokenizer.json')!.text(),
  };
  send({ type: 'load', files, text: $<HTMLTextAreaElement>('text').value });
}

function download(files: ModelFiles): void {
  for (const [name, content] of Object.entries(files)) {
    const blob = new Blob([content as BlobPart], { type: name.endsWith('.json') ? 'application/json' : 'application/octet-stream' });
    const a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = name;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  }
}

/** The size controls show the model in use (a loaded one may have sizes the menus lack). */
function showSizes(c: ModelSizes): void {
  for (const [id, key] of [['n-layer', 'n_layer'], ['n-head', 'n_head'], ['n-embd', 'n_embd'], ['block-size', 'block_size']] as const) {
    const sel = $<HTMLSelectElement>(id);
    const v = String(c[key]);
    if (![...sel.options].some((o) => o.value === v)) sel.append(new Option(v, v));
    sel.value = v;
  }
}

// ---- messages from the worker ----
worker.onmessage = (ev: MessageEvent<FromWorker>): void => {
  const m = ev.data;
  switch (m.type) {
    case 'ready':
      clearCurves();
      trainable = m.trainable;
      setRunning(false);
      $('model-info').textContent = `${m.params.toLocaleString('en-US')} parameters · ${m.config.n_layer} layers, ${m.config.n_head} heads, ${m.config.n_embd} wide, context ${m.config.block_size}, ${m.vocabSize} tokens · on ${m.backend}`;
      showSizes(m.config);
      fillSelect('layer', m.config.n_layer, 'layer');
      fillSelect('head', m.config.n_head, 'head');
      if (m.note) showError(m.note);
      break;
    case 'running':
      setRunning(m.running);
      break;
    case 'step':
      stepLosses.push([m.step, m.loss]);
      $('stat-step').textContent = String(m.step);
      $('stat-loss').textContent = m.loss.toFixed(3);
      $('stat-tps').textContent = Math.round(m.tokensPerSec).toLocaleString('en-US');
      drawChart();
      break;
    case 'eval':
      evals.push({ step: m.step, train: m.train, val: m.val });
      $('stat-train').textContent = m.train.toFixed(3);
      $('stat-val').textContent = m.val.toFixed(3);
      drawChart();
      break;
    case 'token':
      appendToken(m.text);
      renderBars(m);
      break;
    case 'generated':
      setGenerating(false);
      $('output').dataset.done = 'true';
      break;
    case 'attention':
      maps = m;
      drawHeatmap();
      break;
    case 'inspect':
      showInspection(m.report, $('inspect-out'));
      break;
    case 'files':
      download(m.files);
      break;
    case 'error':
      showError(m.message);
      break;
  }
};
worker.onerror = (e): void => showError(`worker: ${e.message}`);

// ---- controls ----
$('sample-text').onclick = (): void => {
  $<HTMLTextAreaElement>('text').value = fablesCorpus(60_000);
  reset();
};
$('start').onclick = (): void => send({ type: 'start' });
$('pause').onclick = (): void => send({ type: 'pause' });
$('reset').onclick = reset;
for (const id of ['n-layer', 'n-head', 'n-embd', 'block-size']) $(id).onchange = reset;
for (const [id, digits] of [['temperature', 2], ['top-k', 0]] as const) {
  const input = $<HTMLInputElement>(id);
  input.oninput = (): void => void ($(`${id}-out`).textContent = Number(input.value).toFixed(digits));
}
$('generate').onclick = (): void => {
  const prompt = $<HTMLInputElement>('prompt').value;
  if (!prompt) return showError('type a prompt first');
  const out = $('output');
  out.textContent = prompt;
  delete out.dataset.done;
  setGenerating(true);
  send({ type: 'generate', prompt, maxNewTokens: num('max-new') || 100, temperature: num('temperature'), topK: num('top-k') });
};
$('stop').onclick = (): void => send({ type: 'stopGenerate' });
$('show-attention').onclick = (): void => {
  const prompt = $<HTMLInputElement>('prompt').value;
  if (!prompt) return showError('type a prompt first');
  send({ type: 'attention', prompt });
};
$('inspect').onclick = (): void => {
  $('inspect-out').textContent = 'looking inside…';
  send({ type: 'inspect', text: $<HTMLTextAreaElement>('text').value });
};
$('layer').onchange = drawHeatmap;
$('head').onchange = drawHeatmap;
$('heatmap').onmousemove = hoverHeatmap;
$('heatmap').onmouseleave = (): void => void ($('tooltip').hidden = true);
$('download').onclick = (): void => send({ type: 'save' });
const drop = $('drop');
drop.ondragover = (e): void => {
  e.preventDefault();
  drop.classList.add('over');
};
drop.ondragleave = (): void => drop.classList.remove('over');
drop.ondrop = (e): void => {
  e.preventDefault();
  drop.classList.remove('over');
  if (e.dataTransfer?.files.length) void loadFiles(e.dataTransfer.files);
};
$<HTMLInputElement>('file-input').onchange = (e): void => {
  const files = (e.target as HTMLInputElement).files;
  if (files?.length) void loadFiles(files);
};
window.onresize = (): void => drawChart();

$<HTMLTextAreaElement>('text').value = fablesCorpus(60_000);
reset();
void running;
void generating;
