import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { backend, registerBackend, setBackend } from '../src/backend/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { packRowPanels, quantizeRowPanels, ROW_PANEL, rowPanelScore, topRowsOfWith, topRowsWith, type RowPanels } from '../src/backend/row_panels.js';
import { topK, VectorMatrix } from '../src/rag/vector_matrix.js';
import { Rng } from '../src/util/rng.js';

const addon = loadAddon();
const native = addon ? createNativeBackend(addon) : null;
if (native) registerBackend(native);
const threads = addon?.threads();
after(() => {
  setBackend('js');
  if (addon) {
    addon.setIsa(addon.detectedIsa());
    addon.setThreads(threads!);
  }
});
const rng = new Rng(9);
/** Small integers: every product and sum is exact in fp32, so the twin and the kernel must agree to the bit, ties included. */
const ints = (n: number, range: number) => Float32Array.from({ length: n }, () => Math.floor(rng.random() * (2 * range + 1)) - range);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.random() - 0.5);

function top(p: RowPanels, q: Float32Array, k: number, run: 'js' | 'native'): Array<[number, number]> {
  const rows = new Int32Array(Math.max(k, 1));
  const scores = new Float32Array(Math.max(k, 1));
  const count = run === 'js' ? topRowsWith(q, p, k, rows, scores) : native!.topRows!(q, p, k, rows, scores);
  return Array.from({ length: count }, (_, i) => [rows[i]!, scores[i]!]);
}

describe('row panels (backend/row_panels.ts)', () => {
  it('pack ROW_PANEL rows a panel as [width][ROW_PANEL], zero past n; int8 rows by their largest magnitude', () => {
    const n = ROW_PANEL + 3;
    const width = 3;
    const m = rand(n * width);
    const p = packRowPanels(m, n, width);
    assert.equal(p.data.length, 2 * width * ROW_PANEL);
    assert.equal(p.data[width * ROW_PANEL + 1 * ROW_PANEL + 2], m[(ROW_PANEL + 2) * width + 1]);
    assert.equal(p.data[2 * width * ROW_PANEL - 1], 0);
    const q8 = quantizeRowPanels(m, n, width);
    for (let r = 0; r < n; r++) {
      const max = Math.max(...m.subarray(r * width, (r + 1) * width).map(Math.abs));
      assert.ok(Math.abs(q8.scale![r]! - max / 127) < 1e-7);
      const q = new Float32Array(width).fill(0);
      q[0] = 1;
      assert.ok(Math.abs(rowPanelScore(q8, q, r) - m[r * width]!) <= max / 254 + 1e-6, `row ${r}`);
    }
  });

  it('the js twin keeps the k best, best first, lower row first on ties, as a full sort would', () => {
    const n = 50;
    const width = 4;
    const m = ints(n * width, 2);
    const q = ints(width, 2);
    const p = packRowPanels(m, n, width);
    const sorted = Array.from({ length: n }, (_, r) => {
      let s = 0;
      for (let j = 0; j < width; j++) s += q[j]! * m[r * width + j]!;
      return [r, s] as [number, number];
    }).sort((a, b) => b[1] - a[1] || a[0] - b[0]);
    assert.deepEqual(top(p, q, 10, 'js'), sorted.slice(0, 10));
    assert.deepEqual(top(p, q, n + 5, 'js'), sorted, 'k > n: every row');
    assert.deepEqual(top(packRowPanels(new Float32Array(0), 0, width), q, 5, 'js'), [], 'n = 0');
    // The rerank's twin over given rows.
    const cands = Int32Array.from([7, 3, 41, 3 + 16, 0]);
    const rows = new Int32Array(3);
    const scores = new Float32Array(3);
    assert.equal(topRowsOfWith(q, m, width, cands, cands.length, 3, rows, scores), 3);
    assert.deepEqual([...rows], sorted.filter(([r]) => cands.includes(r)).slice(0, 3).map(([r]) => r));
  });
});

describe('the native topRows against its js twin', { skip: native ? false : 'native addon not built' }, () => {
  for (const isa of ['detected', 'portable'] as const) {
    it(`${isa}: fp32 and int8 panels, ties, k > n, n = 0, n not a multiple of ${ROW_PANEL}, one and several threads`, () => {
      if (isa === 'portable') addon!.setIsa('portable');
      else addon!.setIsa(addon!.detectedIsa());
      for (const t of [1, 2, 3]) {
        addon!.setThreads(t);
        // Integers with many equal scores, at sizes around the panel and the groups of four panels.
        for (const [n, width] of [[9001, 40], [37, 8], [16, 5], [1, 3], [0, 4]] as const) {
          const m = ints(n * width, 3);
          const q = ints(width, 2);
          for (const p of [packRowPanels(m, n, width), quantizeRowPanels(m, n, width)]) {
            for (const k of [1, 10, 100, n, n + 7]) {
              const what = `${p.data.constructor.name} n ${n} width ${width} k ${k} threads ${t}`;
              assert.deepEqual(top(p, q, k, 'native'), top(p, q, k, 'js'), what);
            }
          }
        }
        // Past ROW_TOP_THREADED_BYTES (16 MB) the scan is split over the threads: 110 000 fp32 rows of 40.
        {
          const [n, width] = [110000, 40];
          const p = packRowPanels(ints(n * width, 3), n, width);
          const q = ints(width, 2);
          for (const k of [1, 64]) assert.deepEqual(top(p, q, k, 'native'), top(p, q, k, 'js'), `threaded scan, k ${k}, threads ${t}`);
        }
        // Random fp32 rows: the same rows, scores to rounding.
        const [n, width] = [5000, 32];
        const m = rand(n * width);
        const q = rand(width);
        for (const p of [packRowPanels(m, n, width), quantizeRowPanels(m, n, width)]) {
          const a = top(p, q, 50, 'native');
          const b = top(p, q, 50, 'js');
          assert.equal(a.length, 50);
          for (let i = 0; i < 50; i++) assert.ok(Math.abs(a[i]![1] - b[i]![1]) < 1e-5, `rank ${i}`);
          assert.ok(a.filter(([r], i) => r === b[i]![0]).length >= 48, 'rows in the same order but for near-ties');
        }
      }
    });
  }

  it('topRowsOf (the rerank) against its twin, and checks its arguments', () => {
    addon!.setIsa(addon!.detectedIsa());
    const [n, width] = [300, 20];
    const m = ints(n * width, 3);
    const q = ints(width, 2);
    const cands = Int32Array.from({ length: 120 }, () => Math.floor(rng.random() * n));
    for (const k of [0, 1, 10, 120, 200]) {
      const r1 = new Int32Array(200), s1 = new Float32Array(200), r2 = new Int32Array(200), s2 = new Float32Array(200);
      const c1 = native!.topRowsOf!(q, m, width, cands, cands.length, k, r1, s1);
      const c2 = topRowsOfWith(q, m, width, cands, cands.length, k, r2, s2);
      assert.equal(c1, c2);
      assert.deepEqual([...r1.subarray(0, c1)], [...r2.subarray(0, c2)], `k ${k}`);
      assert.deepEqual([...s1.subarray(0, c1)], [...s2.subarray(0, c2)]);
    }
    assert.equal(native!.topRowsOf!(q, m, width, cands, 0, 5, new Int32Array(5), new Float32Array(5)), 0, 'no candidates');
    assert.throws(() => native!.topRowsOf!(q, m, width, Int32Array.from([n]), 1, 1, new Int32Array(1), new Float32Array(1)), /outside the matrix/);
    assert.throws(() => native!.topRows!(new Float32Array(3), packRowPanels(m, n, width), 1, new Int32Array(1), new Float32Array(1)), /query of 3 components/);
  });

  it('the vector matrix on the native backend: fused scans and rerank find what the js path finds', () => {
    const [n, d, pd] = [4000, 24, 8];
    const full = rand(n * d);
    const prefix = Float32Array.from({ length: n * pd }, (_, i) => full[Math.floor(i / pd) * d + (i % pd)]!);
    const mat = new VectorMatrix(Array.from({ length: n }, (_, i) => `c${i}`), Array.from({ length: n }, (_, i) => BigInt(i)), pd, d, prefix, full);
    const q = rand(d);
    const qp = q.slice(0, pd);
    setBackend('js');
    const exactJs = mat.topByFull(q, 10).map((h) => h.row);
    const twoJs = mat.rerank(q, mat.topByPrefix(qp, 200), 10).map((h) => h.row);
    assert.deepEqual(mat.twoStage(q, qp, 200, 10).map((h) => h.row), twoJs, 'js twoStage: rerank of the prefix candidates');
    assert.deepEqual(exactJs, topK(full, d, n, q, 10).map((h) => h.row));
    setBackend('native');
    try {
      assert.equal(backend().name, 'native');
      assert.deepEqual(mat.topByFull(q, 10).map((h) => h.row), exactJs);
      assert.deepEqual(mat.rerank(q, mat.topByPrefix(qp, 200, 'fp32'), 10).map((h) => h.row), twoJs);
      // int8 prefixes: candidates may differ at the margin, the reranked top 10 of 200 not here.
      assert.deepEqual(mat.rerank(q, mat.topByPrefix(qp, 200, 'int8'), 10).map((h) => h.row), twoJs);
      assert.deepEqual(mat.topByPrefix(qp, 0), []);
      // twoStage: the same as rerank(topByPrefix) with the candidates kept in typed arrays.
      for (const prefix of ['int8', 'fp32'] as const) assert.deepEqual(mat.twoStage(q, qp, 200, 10, prefix), mat.rerank(q, mat.topByPrefix(qp, 200, prefix), 10), prefix);
      assert.deepEqual(mat.twoStage(q, qp, n + 5, 10).map((h) => h.row), mat.topByFull(q, 10).map((h) => h.row), 'every row a candidate: the exact top 10');
      assert.deepEqual(mat.twoStage(q, qp, 50, 0), []);
    } finally {
      setBackend('js');
    }
  });
});
