import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { jsBackend } from '../src/backend/js/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { dequantizeMatrix, GGML_TYPE, interleaveRows16, quantizeMatrix, QUANT_BLOCKS, storedRow, type QuantizedMatrix } from '../src/backend/quantized_matrix.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';

// The 'rows16' layout of q4_0 / q8_0 matrices (16 rows interleaved block by
// block, quantized_matrix.ts): the js reorder and reader, the native reorder,
// and the native kernels on it against the js twin.

const rng = new Rng(7);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
const copy = (m: QuantizedMatrix): QuantizedMatrix => ({ ...m, data: m.data.slice() });

/**
 * A matrix whose every block scale is 1 (f16 0x3c00) with random quants, and
 * activations whose blocks each hold ±127 (so their scale is exactly 1 and
 * q = x): every product is then an integer below 2²⁴, exact in float32 in
 * any order of addition — the kernels must agree bit for bit.
 */
function exactCase(type: 'q4_0' | 'q8_0', N: number, K: number, rows: number): { w: QuantizedMatrix; x: Float32Array } {
  const { bytes } = QUANT_BLOCKS[type];
  const data = new Uint8Array(N * (K / 32) * bytes);
  for (let p = 0; p < data.length; p += bytes) {
    data[p] = 0x00;
    data[p + 1] = 0x3c;
    for (let j = 2; j < bytes; j++) data[p + j] = rng.int(256);
  }
  const x = Float32Array.from({ length: rows * K }, (_, i) => (i % 32 === 5 ? (i % 64 < 32 ? 127 : -127) : rng.int(255) - 127));
  return { w: { type, rows: N, cols: K, data }, x };
}

describe('the interleaved (rows16) layout', () => {
  it('keeps every row: storedRow and dequantize give the ggml rows back', () => {
    for (const type of ['q4_0', 'q8_0'] as const) {
      const m = quantizeMatrix(type, rand(48 * 96), 48, 96);
      const before = copy(m);
      interleaveRows16(m);
      assert.equal(m.layout, 'rows16');
      assert.notDeepEqual(m.data, before.data, 'the bytes moved');
      for (const r of [0, 1, 15, 16, 31, 47]) assert.deepEqual(storedRow(m, r), storedRow(before, r), `${type} row ${r}`);
      assert.deepEqual(dequantizeMatrix(m), dequantizeMatrix(before));
    }
  });

  it('refuses a type or row count it cannot interleave', () => {
    assert.throws(() => interleaveRows16(quantizeMatrix('q4_0', rand(17 * 32), 17, 32)), /multiple of 16/);
  });
});

const addon = loadAddon();
const skip = addon ? false : 'native addon not built (npm run build:native): native interleaved kernel tests skipped';
const native = addon ? createNativeBackend(addon) : null;
after(() => { addon?.setIsa(addon.detectedIsa()); addon?.setThreads(2); });

describe('native kernels on the interleaved layout', { skip }, () => {
  it('the native reorder writes the same bytes as the js one', () => {
    for (const type of ['q4_0', 'q8_0'] as const) {
      const js = quantizeMatrix(type, rand(32 * 160), 32, 160);
      const nat = copy(js);
      interleaveRows16(js);
      addon!.interleaveQuantRows(GGML_TYPE[type], nat.data, nat.rows, nat.cols);
      assert.deepEqual(nat.data, js.data, type);
    }
  });

  it('an AVX-512 VNNI CPU reorders a matrix at its first product, and only one of 16·n rows', () => {
    addon!.setIsa(addon!.detectedIsa());
    const x = rand(64);
    const m = quantizeMatrix('q4_0', rand(32 * 64), 32, 64);
    const odd = quantizeMatrix('q4_0', rand(24 * 64), 24, 64);
    native!.linearQuantized(x, 1, m, null, new Float32Array(32));
    native!.linearQuantized(x, 1, odd, null, new Float32Array(24));
    assert.equal(m.layout, addon!.prefersInterleaved() ? 'rows16' : undefined);
    assert.equal(odd.layout, undefined);
  });

  const isas = addon ? ['portable', 'avx2', 'avx512'].filter((i) => addon.setIsa(i)) : [];
  for (const isa of isas) {
    it(`${isa}: exact integer sums (unit scales) and random matrices agree with the js twin, 1 and 2 threads`, () => {
      assert.ok(addon!.setIsa(isa));
      for (const threads of [1, 2]) {
        addon!.setThreads(threads);
        for (const type of ['q4_0', 'q8_0'] as const) {
          for (const [rows, N, blocks] of [[1, 16, 1], [1, 48, 3], [3, 32, 2], [8, 16, 5], [13, 64, 18], [1, 1536, 18], [70, 48, 4]] as const) {
            const K = blocks * 32;
            const exact = exactCase(type, N, K, rows);
            const random = { w: quantizeMatrix(type, rand(N * K), N, K), x: rand(rows * K) };
            for (const [name, c] of [['exact', exact], ['random', random]] as const) {
              interleaveRows16(c.w);
              for (const bias of [null, rand(N)]) {
                const want = new Float32Array(rows * N);
                const got = new Float32Array(rows * N).fill(NaN);
                jsBackend.linearQuantized(c.x, rows, c.w, bias, want);
                native!.linearQuantized(c.x, rows, c.w, bias, got);
                const where = `${isa} t=${threads} ${type} ${name} rows=${rows} N=${N} K=${K}`;
                if (name === 'exact' && !bias) assert.deepEqual(got, want, where);
                else assertClose(got, want, 2e-4 * Math.sqrt(K), where);
              }
            }
          }
        }
      }
    });
  }

  it('one activation row (the decode kernel) gives bit for bit what that row gives in a batch (the prefill kernel)', () => {
    addon!.setIsa(addon!.detectedIsa());
    for (const threads of [1, 2]) {
      addon!.setThreads(threads);
      for (const type of ['q4_0', 'q8_0'] as const) {
        for (const [N, K] of [[16, 32], [48, 96], [1536, 576], [64, 2048]] as const) {
          const w = quantizeMatrix(type, rand(N * K), N, K);
          interleaveRows16(w);
          const x = rand(K), bias = rand(N);
          for (const b of [null, bias]) {
            const one = new Float32Array(N), two = new Float32Array(2 * N);
            native!.linearQuantized(x, 1, w, b, one);
            const xx = new Float32Array(2 * K);
            xx.set(x);
            xx.set(x, K);
            native!.linearQuantized(xx, 2, w, b, two);
            assert.deepEqual(one, two.subarray(0, N), `t=${threads} ${type} N=${N} K=${K} bias=${!!b}`);
          }
        }
      }
    }
  });
});
