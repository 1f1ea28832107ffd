import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { argmaxRows as jsArgmaxRows } from '../src/backend/js/argmax.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { argmax } from '../src/generate/sampling.js';
import { Rng } from '../src/util/rng.js';

// The native argmaxRows (decoder_step.cc, AVX-512: 64 lanes, then the tail) against its js twin,
// index for index: ties, NaN, ±0, ±Infinity, maxima in the lanes and in the tail.
const addon = loadAddon();
if (addon) registerBackend(createNativeBackend(addon));
after(() => setBackend('js'));

function cases(): Float32Array[] {
  const rng = new Rng(3);
  const out: Float32Array[] = [];
  for (const n of [1, 2, 15, 16, 63, 64, 65, 127, 128, 200, 4095, 4096, 4097, 49152, 49155]) {
    const rand = Float32Array.from({ length: n }, () => rng.normal() * 5);
    out.push(rand);
    // A few values only: many ties, the first of each maximum must win.
    out.push(Float32Array.from({ length: n }, () => Math.floor(rng.random() * 4)));
    // All equal: index 0.
    out.push(new Float32Array(n).fill(-2));
    // The maximum at the very end (the tail), at the start, twice in different lanes.
    const end = rand.slice(); end[n - 1] = 100; out.push(end);
    const start = rand.slice(); start[0] = 100; out.push(start);
    if (n > 40) { const two = rand.slice(); two[37] = 100; two[n - 3] = 100; out.push(two); }
    // NaN: first (gives 0), scattered (never wins), everywhere but one.
    const nan0 = rand.slice(); nan0[0] = NaN; out.push(nan0);
    const nans = rand.map((v, i) => (i % 7 === 3 ? NaN : v)); out.push(nans);
    if (n > 1) { const most = new Float32Array(n).fill(NaN); most[0] = -1; most[n >> 1] = 0; out.push(most); }
    // ±0 ties (equal under >: the first stays), infinities.
    out.push(Float32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? -0 : i % 3 === 1 ? 0 : -1)));
    const inf = rand.slice(); inf[n >> 1] = Infinity; inf[n - 1] = Infinity; out.push(inf);
    out.push(new Float32Array(n).fill(-Infinity));
  }
  return out;
}

describe('argmaxRows: native against js', () => {
  it('gives the js index for every row', { skip: !addon && 'native addon not built' }, () => {
    for (const x of cases()) {
      const want = new Float32Array(1), got = new Float32Array(1);
      jsArgmaxRows(x, 1, x.length, want);
      addon!.argmaxRows(x, 1, x.length, got);
      assert.equal(got[0], want[0], `n = ${x.length}, [${Array.from(x.subarray(0, 6))}…]`);
    }
  });

  it('takes rows, and subarrays at any offset', { skip: !addon && 'native addon not built' }, () => {
    const rng = new Rng(5);
    const rows = 5, cols = 333;
    const x = Float32Array.from({ length: rows * cols + 7 }, () => Math.round(rng.normal() * 3));
    const want = new Float32Array(rows), got = new Float32Array(rows);
    jsArgmaxRows(x.subarray(7), rows, cols, want);
    addon!.argmaxRows(x.subarray(7), rows, cols, got);
    assert.deepEqual(got, want);
  });

  it('rejects arrays smaller than rows × cols', { skip: !addon && 'native addon not built' }, () => {
    assert.throws(() => addon!.argmaxRows(new Float32Array(10), 2, 6, new Float32Array(2)), /argmaxRows/);
  });

  it("generate's argmax gives the same index on either backend", () => {
    for (const name of ['js', ...(addon ? ['native'] : [])]) {
      setBackend(name);
      for (const x of cases()) {
        let best = 0, top = x[0]!;
        for (let i = 1; i < x.length; i++) if (x[i]! > top) { top = x[i]!; best = i; }
        assert.equal(argmax(x), best, `${name}, n = ${x.length}`);
      }
    }
  });
});
