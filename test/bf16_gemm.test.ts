import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { gemmArgs, mat, matT } from '../src/backend/gemm_args.js';
import { bf16Round } from '../src/backend/js/bf16.js';
import { jsBackend } from '../src/backend/js/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { Rng } from '../src/util/rng.js';

const addon = loadAddon();
const skip = addon ? false : 'native addon not built (npm run build:native): native bf16 GEMM tests skipped';
const rng = new Rng(21);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
after(() => {
  if (!addon) return;
  addon.setIsa(addon.detectedIsa());
  addon.setBf16Dot(addon.cpuHasBf16());
});

describe('bf16 rounding (js twin of native/src/bf16.h)', () => {
  it('rounds to nearest, ties to even, keeps 8 significant bits', () => {
    assert.equal(bf16Round(1), 1);
    assert.equal(bf16Round(1 + 2 ** -8), 1); // a tie: to the even neighbour 1
    assert.equal(bf16Round(1 + 3 * 2 ** -8), 1 + 2 ** -6); // a tie: to the even neighbour 1 + 2^-6
    assert.equal(bf16Round(1 + 2 ** -8 + 2 ** -20), 1 + 2 ** -7); // just above the tie: up
    assert.equal(bf16Round(-3.14159), -3.140625);
    assert.equal(bf16Round(1e-40), 0); // subnormal → zero, as vcvtne2ps2bf16
    assert.ok(Number.isNaN(bf16Round(NaN)));
    assert.equal(bf16Round(Infinity), Infinity);
  });
});

/** Every transpose, odd sizes (odd K: a last half-filled k pair), accumulate, bias, batches. */
function compareWithTwin(label: string): void {
  const native = createNativeBackend(addon!);
  for (const [M, N, K] of [
    [1, 1, 1],
    [7, 33, 129],
    [33, 7, 5],
    [129, 65, 300],
    [40, 130, 511],
    [96, 80, 700], // K > KC (256 floats; 512 bf16): later slices add onto the first
    [24, 40, 1101], // three bf16 slices (512, 512, 77: an odd remainder)
  ] as const) {
    for (const transA of [false, true]) {
      for (const transB of [false, true]) {
        const batch = 2;
        const a = rand(batch * M * K);
        const b = rand(batch * K * N);
        const bias = rand(N);
        const c0 = rand(batch * M * N);
        const args = (c: Float32Array) =>
          gemmArgs(
            { M, N, K },
            mat(c, N, { stride: M * N }),
            (transA ? matT : mat)(a, transA ? M : K, { stride: M * K }),
            (transB ? matT : mat)(b, transB ? K : N, { stride: K * N }),
            { batch, accumulate: true, alpha: 0.5, bias, bf16: true },
          );
        const want = c0.slice();
        const got = c0.slice();
        jsBackend.gemm(args(want));
        native.gemm(args(got));
        // The twin sums exactly-representable bf16 products in double precision and rounds once;
        // the native kernels sum in FP32 (another order): the gap is FP32 rounding of the sum,
        // at most about K·2⁻²⁴·Σ|a·b|. |a·b| ≈ 1 for these normal samples, so 4·K·2⁻²⁴ is tight.
        const tol = 4 * K * 2 ** -24 + 1e-6;
        for (let i = 0; i < want.length; i++) {
          const scale = 1 + Math.abs(want[i]!);
          assert.ok(Math.abs(got[i]! - want[i]!) <= tol * scale * Math.sqrt(K), `${label} ${M}×${N}×${K} tA=${transA} tB=${transB} [${i}]: ${got[i]} vs ${want[i]}`);
        }
        // And it is the bf16 product, not the FP32 one: rounding the operands moves the result.
        const fp32 = c0.slice();
        jsBackend.gemm({ ...args(fp32), bf16: false });
        if (K >= 129) assert.ok(want.some((w, i) => Math.abs(w - fp32[i]!) > 1e-4), `${label}: bf16 and fp32 results should differ`);
      }
    }
  }
}

describe('native bf16 GEMM agrees with the js bf16 twin', { skip }, () => {
  it('AVX-512 BF16 (vdpbf16ps) when the CPU has it', { skip: addon && !addon.cpuHasBf16() ? 'this CPU has no AVX-512 BF16' : false }, () => {
    assert.ok(addon!.setIsa('avx512'));
    assert.ok(addon!.setBf16Dot(true));
    assert.equal(addon!.bf16Dot(), true);
    compareWithTwin('vdpbf16ps');
  });
  for (const isa of ['portable', 'avx2', 'avx512']) {
    it(`FP32 fallback on the ${isa} kernels (rounded operands)`, () => {
      if (!addon!.setIsa(isa)) return; // this CPU cannot run that path
      addon!.setBf16Dot(false);
      assert.equal(addon!.bf16Dot(), false);
      compareWithTwin(`${isa} fallback`);
    });
  }
  it('packs (and rounds) every operand layout exactly as bf16Round: ties, subnormals, −0, odd sizes', () => {
    // C = A·I and C = I·B: each output is one rounded operand times 1, so it must equal
    // bf16Round of that operand bit for bit, whichever packing path (vector or scalar) ran.
    const native = createNativeBackend(addon!);
    addon!.setIsa(addon!.detectedIsa());
    for (const dot of addon!.cpuHasBf16() ? [true, false] : [false]) {
      addon!.setBf16Dot(dot);
      const odd = [1 + 2 ** -8, 1 + 3 * 2 ** -8, -(1 + 2 ** -8 + 2 ** -20), 1e-40, -1e-39, -0, 3.3e38, 2 ** -126];
      for (const [M, K] of [[37, 45], [8, 33], [70, 300], [3, 2]] as const) {
        const x = Float32Array.from({ length: M * K }, (_, i) => (i % 3 === 0 ? odd[i % odd.length]! : rng.normal()));
        const eye = Float32Array.from({ length: K * K }, (_, i) => (i % (K + 1) === 0 ? 1 : 0));
        for (const trans of [false, true]) {
          for (const side of ['A', 'B'] as const) {
            // side A: C [M, K] = X·I; side B: C [K, M] = I·Xᵀ. trans: the operand is read transposed from memory.
            const c = new Float32Array(M * K);
            const args =
              side === 'A'
                ? gemmArgs({ M, N: K, K }, mat(c, K), trans ? matT(transposed(x, M, K), M) : mat(x, K), mat(eye, K), { bf16: true })
                : gemmArgs({ M: K, N: M, K }, mat(c, M), mat(eye, K), trans ? matT(x, K) : mat(transposed(x, M, K), M), { bf16: true });
            native.gemm(args);
            for (let i = 0; i < M; i++)
              for (let k = 0; k < K; k++) {
                const got = side === 'A' ? c[i * K + k]! : c[k * M + i]!;
                assert.ok(Object.is(got, bf16Round(x[i * K + k]!)) || (got === 0 && bf16Round(x[i * K + k]!) === 0), `dot=${dot} ${side} trans=${trans} ${M}×${K} (${i}, ${k}): ${got} vs ${bf16Round(x[i * K + k]!)}`);
              }
          }
        }
      }
    }
  });
});

/** x [rows, cols] → xᵀ [cols, rows]. */
function transposed(x: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(x.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) t[j * rows + i] = x[i * cols + j]!;
  return t;
}
