import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { jsBackend } from '../src/backend/js/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { dequantizeMatrix, floatToHalf, halfToFloat, quantizeMatrix, QUANT_BLOCKS, type QuantizedMatrix, type QuantType } from '../src/backend/quantized_matrix.js';
import { linearQuantized } from '../src/tensor/ops/linear_quantized.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';

const rng = new Rng(5);
const rand = (n: number, std = 1) => Float32Array.from({ length: n }, () => rng.normal() * std);
/** Random blocks of any type: random bytes, with every f16 scale set to something finite and small. */
function randomMatrix(type: QuantType, rows: number, cols: number): QuantizedMatrix {
  const { elements, bytes } = QUANT_BLOCKS[type];
  const data = Uint8Array.from({ length: rows * (cols / elements) * bytes }, () => rng.int(256));
  const view = new DataView(data.buffer);
  const scaleAt = type === 'q6_k' ? [208] : type === 'q4_k' ? [0, 2] : [0];
  for (let b = 0; b < data.length / bytes; b++) for (const o of scaleAt) view.setUint16(b * bytes + o, floatToHalf(0.001 + rng.random() * 0.02), true);
  return { type, rows, cols, data };
}

describe('block quantization in ggml layouts', () => {
  it('f16 conversions round to nearest even and are exact on half values', () => {
    for (const [x, h] of [[1, 0x3c00], [-2, 0xc000], [0.5, 0x3800], [65504, 0x7bff], [1e6, 0x7c00], [2 ** -24, 0x0001], [0, 0], [1 + 2 ** -11, 0x3c00], [1 + 3 * 2 ** -11, 0x3c02]] as const) {
      assert.equal(floatToHalf(x), h, `${x}`);
    }
    for (let h = 0; h < 0x7c00; h += 37) assert.equal(floatToHalf(halfToFloat(h)), h);
  });

  it('quantize_row_q8_0: d = max|x|/127, q = roundf(x/d) (hand-checked block)', () => {
    const x = new Float32Array(32);
    x[0] = 1.27; x[1] = -0.635; x[2] = 0.005; x[3] = 0.015; x[31] = -1.0;
    const q = quantizeMatrix('q8_0', x, 1, 32);
    assert.equal(q.data.length, 34);
    const d = new DataView(q.data.buffer);
    assert.equal(d.getUint16(0, true), floatToHalf(Math.fround(1.27) / 127)); // 0.01
    // 1.27/0.01 = 127; −0.635/0.01 = −63.5 → −64 (half away from zero); 0.5 → 1 (not banker's 0); 1.5 → 2; −1 → −100.
    assert.deepEqual([0, 1, 2, 3, 31].map((j) => d.getInt8(2 + j)), [127, -64, 1, 2, -100]);
    assert.equal(d.getInt8(2 + 10), 0);
  });

  it('quantize_row_q4_0: the signed extreme maps to −8, q = min(15, trunc(x/d + 8.5)), low nibbles first (hand-checked block)', () => {
    const x = new Float32Array(32);
    x[0] = -4; x[1] = 2; x[16] = 4; x[17] = 1.25; x[15] = 0.6;
    // max = −4 (first of the largest magnitude wins) → d = 0.5, id = 2.
    const q = quantizeMatrix('q4_0', x, 1, 32);
    assert.equal(q.data.length, 18);
    assert.equal(halfToFloat(new DataView(q.data.buffer).getUint16(0, true)), 0.5);
    // x/d + 8.5: −4 → 0.5 → 0; 2 → 12.5 → 12; 4 → 16.5 → 15 (clamped); 1.25 → 11; 0.6 → 9.7 → 9; 0 → 8
    assert.equal(q.data[2 + 0], 0 | (15 << 4));
    assert.equal(q.data[2 + 1], 12 | (11 << 4));
    assert.equal(q.data[2 + 15], 9 | (8 << 4));
    assert.equal(q.data[2 + 5], 8 | (8 << 4));
    const back = dequantizeMatrix(q);
    assert.deepEqual([back[0], back[1], back[16], back[17], back[15]], [-4, 2, 3.5, 1.5, 0.5]);
  });

  it('dequantize q8_0 and q4_0: hand-built blocks', () => {
    const q8 = new Uint8Array(34);
    new DataView(q8.buffer).setUint16(0, floatToHalf(0.25), true);
    q8[2] = 4; q8[3] = 0xff; q8[33] = 0x80;
    const a = dequantizeMatrix({ type: 'q8_0', rows: 1, cols: 32, data: q8 });
    assert.deepEqual([a[0], a[1], a[31], a[5]], [1, -0.25, -32, 0]);
    const q4 = new Uint8Array(18);
    new DataView(q4.buffer).setUint16(0, floatToHalf(2), true);
    q4[2] = 0x3a; q4[17] = 0xf0;
    const b = dequantizeMatrix({ type: 'q4_0', rows: 1, cols: 32, data: q4 });
    assert.deepEqual([b[0], b[16], b[15], b[31], b[7]], [(10 - 8) * 2, (3 - 8) * 2, -16, 14, -16]);
  });

  it('dequantize q4_k: 6-bit (scale, min) pairs, the upper four split over two bytes (hand-built block)', () => {
    const p = new Uint8Array(144);
    const v = new DataView(p.buffer);
    v.setUint16(0, floatToHalf(1), true); // d
    v.setUint16(2, floatToHalf(0.5), true); // dmin
    const s = 4; // scales start
    p[s + 0] = 2; // sub-block 0: scale 2
    p[s + 4] = 1; // sub-block 0: min 1
    p[s + 1] = 0x40 | 7; // sub-block 1: scale 7; top bits (1) are sub-block 5's scale bits 4–5
    p[s + 9] = 0x31; // sub-block 5: scale low 4 bits 1, min low 4 bits 3
    p[16 + 0] = 0x95; // group 0: value 0 = 5 (low), value 32 = 9 (high)
    p[16 + 64 + 3] = 0xc0; // group 2, byte 3: value 128 + 3 low nibble 0, value 160 + 3 high nibble 12
    const y = dequantizeMatrix({ type: 'q4_k', rows: 1, cols: 256, data: p });
    assert.equal(y[0], 2 * 5 - 0.5 * 1);
    assert.equal(y[32], 7 * 9 - 0);
    assert.equal(y[160 + 3], 17 * 12 - 0.5 * 3); // scale 1 | 1 << 4 = 17
    assert.equal(y[1], -0.5);
  });

  it('dequantize q6_k: 4 low bits + 2 high bits − 32, int8 scales per 16 values (hand-built block)', () => {
    const p = new Uint8Array(210);
    const v = new DataView(p.buffer);
    v.setUint16(208, floatToHalf(0.5), true);
    v.setInt8(192 + 0, 3);
    v.setInt8(192 + 4, -2);
    v.setInt8(192 + 8 + 1, 5);
    p[0] = 0xa5; // value 0 low bits 5, value 64 low bits 10
    p[128] = 0x12; // value 0 high bits 2, value 64 high bits 1
    p[64 + 20] = 0x0f; // second half, value 128 + 20
    p[128 + 32 + 20] = 0x03;
    const y = dequantizeMatrix({ type: 'q6_k', rows: 1, cols: 256, data: p });
    assert.equal(y[0], 0.5 * 3 * (5 + 32 - 32));
    assert.equal(y[64], 0.5 * -2 * (10 + 16 - 32));
    assert.equal(y[128 + 20], 0.5 * 5 * (15 + 48 - 32));
    assert.equal(y[1], 0.5 * 3 * -32);
  });

  it('quantize → dequantize error: half a step plus the f16 rounding of d (q8_0); q4_0 up to one step where +8 is clamped to 7', () => {
    const x = rand(8 * 64);
    for (const type of ['q8_0', 'q4_0'] as const) {
      const q = quantizeMatrix(type, x, 8, 64);
      const y = dequantizeMatrix(q);
      for (let b = 0; b < x.length / 32; b++) {
        const d = halfToFloat(new DataView(q.data.buffer).getUint16(b * QUANT_BLOCKS[type].bytes, true));
        for (let j = 0; j < 32; j++) assert.ok(Math.abs(y[b * 32 + j]! - x[b * 32 + j]!) <= Math.abs(d) * (type === 'q8_0' ? 0.5 + 128 / 2048 : 1 + 8 / 2048) + 1e-6, `${type} ${b} ${j}`);
      }
    }
  });

  it('js linearQuantized ≈ x·dequant(W)ᵀ + b for every type (activations quantized to 8 bits for q8_0/q4_0)', () => {
    for (const type of ['q8_0', 'q4_0', 'q4_k', 'q6_k'] as const) {
      const K = QUANT_BLOCKS[type].elements * 2, N = 5, rows = 3;
      const w = randomMatrix(type, N, K);
      const x = rand(rows * K);
      const bias = rand(N);
      const got = new Float32Array(rows * N);
      jsBackend.linearQuantized(x, rows, w, bias, got);
      const deq = dequantizeMatrix(w);
      const want = new Float32Array(rows * N);
      let scale = 0;
      for (let m = 0; m < rows; m++) for (let n = 0; n < N; n++) {
        let s = 0, a = 0;
        for (let k = 0; k < K; k++) { s += x[m * K + k]! * deq[n * K + k]!; a += Math.abs(x[m * K + k]! * deq[n * K + k]!); }
        want[m * N + n] = s + bias[n]!;
        scale = Math.max(scale, a);
      }
      // 8-bit activations: each product is off by at most half a step of x (1/254 of the block's max).
      assertClose(got, want, type.endsWith('_k') ? 1e-4 : scale * 0.02, type);
    }
    const t = linearQuantized(Tensor.from(rand(64), [2, 32]), quantizeMatrix('q8_0', rand(96), 3, 32));
    assert.deepEqual(t.shape, [2, 3]);
  });
});

const addon = loadAddon();
const skip = addon ? false : 'native addon not built (npm run build:native): native quantized kernel tests skipped';
const native = addon ? createNativeBackend(addon) : null;
after(() => { addon?.setIsa(addon.detectedIsa()); addon?.setThreads(2); });

describe('native block-quantized kernels agree with the js twin', { skip }, () => {
  const isas = addon ? ['portable', 'avx2', 'avx512'].filter((i) => addon.setIsa(i)) : [];
  for (const isa of isas) {
    it(`${isa}: q8_0, q4_0, q4_k, q6_k × odd sizes × 1 and 2 threads, with and without bias`, () => {
      assert.ok(addon!.setIsa(isa));
      for (const threads of [1, 2]) {
        addon!.setThreads(threads);
        for (const type of ['q8_0', 'q4_0', 'q4_k', 'q6_k'] as const) {
          const E = QUANT_BLOCKS[type].elements;
          for (const [rows, N, blocks] of [[1, 1, 1], [1, 37, 3], [2, 130, 5], [3, 17, 1], [1, 1030, 24], [5, 700, 9], [17, 33, 2], [64, 300, 7], [70, 45, 3], [130, 7, 4]] as const) {
            const K = blocks * E;
            const w = type.endsWith('_k') ? randomMatrix(type, N, K) : quantizeMatrix(type as 'q8_0' | 'q4_0', rand(N * K), N, K);
            const x = rand(rows * K);
            for (const bias of [null, rand(N)]) {
              const want = new Float32Array(rows * N);
              const got = new Float32Array(rows * N).fill(NaN);
              // With a bias, an epilogue too: SiLU, then an addend (a residual connection), as the output is stored.
              const epilogue = bias && { activation: 'silu' as const, addend: rand(rows * N) };
              jsBackend.linearQuantized(x, rows, w, bias, want, epilogue);
              native!.linearQuantized(x, rows, w, bias, got, epilogue);
              assertClose(got, want, 2e-4 * Math.sqrt(K), `${isa} t=${threads} ${type} rows=${rows} N=${N} K=${K}`);
            }
          }
        }
      }
    });
  }
});

describe('quant bench workload', () => {
  it('times each type and counts the weight bytes each call reads', async () => {
    const { benchQuant } = await import('../src/bench/quant.js');
    const bytes: Record<string, number> = { f32: 32 * 64 * 4, int8: 32 * 64 + 32 * 4, q8_0: 32 * 2 * 34, q4_0: 32 * 2 * 18 };
    for (const type of ['f32', 'int8', 'q8_0', 'q4_0'] as const) {
      const r = benchQuant(64, 32, type, 2, 2);
      assert.equal(r.weight_mb, bytes[type]! / 2 ** 20, type);
      assert.ok(Number(r.ms) > 0 && Number(r.gflops) > 0 && r.shape === '64x32' && r.rows === 2, type);
    }
  });
});
