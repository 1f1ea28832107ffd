import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { GemmArgs } from '../src/backend/backend.js';
import { jsBackend } from '../src/backend/js/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { quantizeRows, dequantizeRows } from '../src/nn/quantized_linear.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './helpers.js';

const addon = loadAddon();
const skip = addon ? false : 'native addon not built (npm run build:native): native decode kernel tests skipped';
const native = addon ? createNativeBackend(addon) : null;
const rng = new Rng(21);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
const isas = addon ? [...new Set(['portable', addon.detectedIsa()])] : ['none'];
after(() => addon?.setIsa(addon.detectedIsa()));

for (const isa of isas) {
  describe(`native decode kernels agree with the js reference (${isa} path)`, { skip }, () => {
    before(() => assert.ok(addon!.setIsa(isa)));

    it('GEMV: up to 256 rows times Wᵀ (the decode path of gemm; up to 8 rows in one register-kernel pass over any size of matrix, 2–6 of them four weight rows at a time on AVX-512; past 8 the wide kernel), with bias, alpha, accumulate, odd sizes, threads', () => {
      for (const [M, N, K] of [[1, 1, 1], [1, 37, 19], [2, 130, 64], [3, 5, 200], [4, 1030, 300], [1, 3000, 768], [1, 400, 777], [2, 390, 701], [5, 41, 33], [6, 512, 128], [3, 77, 45], [5, 701, 200], [6, 1030, 131], [7, 130, 301], [7, 903, 260], [8, 1030, 129], [8, 300, 97], [13, 7, 300], [16, 2050, 96], [17, 61, 45], [24, 700, 65], [31, 13, 7], [32, 1031, 130], [33, 50, 20], [100, 67, 50], [256, 300, 33], [300, 40, 17]] as const) {
        for (const accumulate of [false, true]) {
          const lda = K + 3;
          const ldc = N + 1;
          const g: Omit<GemmArgs<Float32Array>, 'c'> = {
            transA: false, transB: true, M, N, K, a: rand(M * lda), aOffset: 0, lda, b: rand(N * K + 2), bOffset: 2, ldb: K,
            cOffset: 1, ldc, alpha: accumulate ? 0.5 : 1, accumulate, batch: 1, strideA: 0, strideB: 0, strideC: 0, bias: rand(N),
          };
          const c0 = rand(1 + M * ldc);
          const want = Float32Array.from(c0);
          const got = Float32Array.from(c0);
          jsBackend.gemm({ ...g, c: want });
          native!.gemm({ ...g, c: got });
          assertClose(got, want, 1e-4 * Math.sqrt(K), `M=${M} N=${N} K=${K} acc=${accumulate}`);
        }
      }
    });

    it('int8 linear: per-channel scales, bias, few rows (GEMV, threaded past 2^18 weights, ragged K) and many rows (widened GEMM)', () => {
      for (const [rows, N, K] of [[1, 1, 3], [1, 77, 40], [1, 700, 777], [2, 300, 128], [2, 400, 1000], [3, 97, 131], [4, 513, 96], [4, 300, 905], [5, 701, 777], [7, 1030, 64], [8, 1030, 300], [16, 300, 200], [27, 1030, 33], [32, 64, 70], [40, 260, 64], [257, 30, 20]] as const) {
        const w = quantizeRows(rand(N * K), N, K);
        const x = rand(rows * K);
        for (const bias of [null, rand(N)]) {
          const want = new Float32Array(rows * N);
          const got = new Float32Array(rows * N);
          // With a bias, an epilogue too: GELU, then an addend (a residual connection), as the output is stored.
          const addend = bias && rand(rows * N);
          const epilogue = addend && { activation: 'gelu' as const, addend };
          jsBackend.linearInt8(x, rows, K, w.data, w.scale, bias, want, N, epilogue);
          native!.linearInt8(x, rows, K, w.data, w.scale, bias, got, N, epilogue);
          assertClose(got, want, 1e-4 * Math.sqrt(K), `rows=${rows} N=${N} K=${K}`);
          if (addend) {
            const without = new Float32Array(rows * N);
            jsBackend.linearInt8(x, rows, K, w.data, w.scale, bias, without, N);
            const gelu = (v: number) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));
            assertClose(want, without.map((v, i) => gelu(v) + addend[i]!), 1e-5, 'js: GELU, then the addend');
          }
        }
        // And the js twin is the fp32 product with the dequantized weights.
        const deq = dequantizeRows(w, new Float32Array(N * K));
        const viaF32 = new Float32Array(rows * N);
        jsBackend.gemm({ transA: false, transB: true, M: rows, N, K, a: x, aOffset: 0, lda: K, b: deq, bOffset: 0, ldb: K, c: viaF32, cOffset: 0, ldc: N, alpha: 1, accumulate: false, batch: 1, strideA: 0, strideB: 0, strideC: 0 });
        const plain = new Float32Array(rows * N);
        jsBackend.linearInt8(x, rows, K, w.data, w.scale, null, plain, N);
        assertClose(plain, viaF32, 1e-4 * Math.sqrt(K), 'int8 vs dequantized fp32');
      }
    });

    it('attention against a KV cache: decode and padded prefill, grouped-query and multi-query caches', () => {
      for (const [B, Tq, past, cap, H, Hkv, D] of [[1, 1, 5, 8, 2, 2, 4], [3, 1, 9, 16, 4, 4, 8], [4, 1, 200, 256, 4, 4, 16], [2, 6, 0, 8, 2, 2, 16], [2, 70, 3, 80, 1, 1, 8], [1, 3, 4, 7, 3, 3, 5],
        [3, 1, 9, 16, 4, 2, 8], [4, 1, 200, 256, 6, 2, 16], [2, 70, 3, 80, 4, 1, 8], [1, 3, 4, 7, 6, 3, 5], [1, 1, 300, 310, 8, 1, 32], [2, 1, 600, 610, 8, 2, 32]] as const) {
        const C = H * D;
        const q = rand(B * Tq * C);
        const kc = rand(B * cap * Hkv * D); // the cache holds only the key/value heads
        const vc = rand(B * cap * Hkv * D);
        const start = Int32Array.from({ length: B }, (_, b) => Math.min(b * 2, past + Tq - 1));
        if (B > 1 && Tq > 2) start[B - 1] = past + 2; // queries before start see nothing
        const d = { B, Tq, past, cap, nHead: H, nKvHead: Hkv, headDim: D, scale: 1 / Math.sqrt(D) };
        const want = new Float32Array(B * Tq * C);
        const got = new Float32Array(B * Tq * C);
        jsBackend.attentionCached(q, kc, vc, want, start, d);
        native!.attentionCached(q, kc, vc, got, start, d);
        assertClose(got, want, 2e-5, `B=${B} Tq=${Tq} past=${past} H=${H}/${Hkv}`);
      }
    });

    it('decode attention with head sizes 32, 64 and 128 (AVX-512: up to 4 query heads of one cached head per pass), at 1 and 2 threads (heads split mid-group)', () => {
      for (const threads of [1, 2]) {
        addon!.setThreads(threads);
        for (const [B, past, H, Hkv, D] of [[1, 40, 9, 3, 64], [1, 300, 9, 3, 64], [2, 130, 12, 3, 64], [1, 300, 32, 4, 128], [1, 70, 6, 6, 32], [3, 20, 5, 1, 64], [1, 200, 8, 2, 48]] as const) {
          const C = H * D;
          const cap = past + 3;
          const q = rand(B * C);
          const kc = rand(B * cap * Hkv * D);
          const vc = rand(B * cap * Hkv * D);
          const start = Int32Array.from({ length: B }, (_, b) => b * 3);
          const d = { B, Tq: 1, past, cap, nHead: H, nKvHead: Hkv, headDim: D, scale: 1 / Math.sqrt(D) };
          const want = new Float32Array(B * C);
          const got = new Float32Array(B * C);
          jsBackend.attentionCached(q, kc, vc, want, start, d);
          native!.attentionCached(q, kc, vc, got, start, d);
          assertClose(got, want, 2e-5, `threads=${threads} B=${B} past=${past} H=${H}/${Hkv} D=${D}`);
        }
      }
      addon!.setThreads(2);
    });

    it('ragged attention: several sequences with caches of their own, in one call (few and many heads×positions: serial and threaded; 1, a few and many new rows)', () => {
      for (const [H, Hkv, D, pasts] of [[2, 2, 4, [3, 0, 7]], [4, 4, 32, [300, 250, 17, 299, 280, 301]], [4, 2, 4, [3, 0, 7]], [6, 1, 32, [300, 250, 17, 299, 280, 301]]] as const) {
        const C = H * D;
        const seqs = pasts.map((past, i) => {
          // Decode rows, a few new rows (a speculative verifier's: one by one through the decode
          // loops, up to 8) and prompts past that (a head's GEMM tile).
          const Tq = [1, 3, 1, 12, 8, 9][i % 6]!;
          const cap = past + Tq + 2;
          return { k: rand(cap * Hkv * D), v: rand(cap * Hkv * D), cap, past, start: Math.min(i, past), offset: 0, Tq };
        });
        let rows = 0;
        for (const s of seqs) [s.offset, rows] = [rows, rows + s.Tq];
        const q = rand(rows * C);
        const d = { nHead: H, nKvHead: Hkv, headDim: D, scale: 1 / Math.sqrt(D) };
        const want = new Float32Array(rows * C);
        const got = new Float32Array(rows * C);
        jsBackend.attentionCachedRagged(q, want, seqs, d);
        native!.attentionCachedRagged(q, got, seqs, d);
        assertClose(got, want, 2e-5, `H=${H}/${Hkv} pasts=${pasts.join(',')}`);
        // With each sequence's new keys and values given (fresh): stored in its cache at slot past on, then attended to.
        const W = Hkv * D;
        const fresh = { k: rand(rows * W), v: rand(rows * W) };
        const copies = () => seqs.map((s) => ({ ...s, k: s.k.slice(), v: s.v.slice() }));
        const [js, nat] = [copies(), copies()];
        const [wantF, gotF] = [new Float32Array(rows * C), new Float32Array(rows * C)];
        jsBackend.attentionCachedRagged(q, wantF, js, d, fresh);
        native!.attentionCachedRagged(q, gotF, nat, d, fresh);
        js.forEach((s, i) => {
          assert.deepEqual(s.k.subarray(s.past * W, (s.past + s.Tq) * W), fresh.k.subarray(s.offset * W, (s.offset + s.Tq) * W), `sequence ${i}: keys stored`);
          assert.deepEqual(nat[i]!.v, s.v, `sequence ${i}: native stores the values as js`);
        });
        assertClose(gotF, wantF, 2e-5, `fresh H=${H}/${Hkv}`);
      }
    });
  });
}
