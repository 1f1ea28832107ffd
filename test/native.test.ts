import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Backend, GemmArgs } from '../src/backend/backend.js';
import { registerBackend, setBackend } from '../src/backend/index.js';
import { jsBackend } from '../src/backend/js/index.js';
import { createNativeBackend, loadAddon } from '../src/backend/native/index.js';
import { GPT } from '../src/models/gpt.js';
import { parseGPTConfig } from '../src/models/gpt_config.js';
import { runReferenceCheck } from '../src/reference/check.js';
import { backward } from '../src/tensor/autograd.js';
import { Rng } from '../src/util/rng.js';
import { assertClose, hasShared, REFERENCE_DIR } from './helpers.js';

/** q, k and v side by side in one [rows, C + 2·Ckv] array (c_attn's output), and the three views an attention reads with that row stride. */
function packQkv(q: Float32Array, k: Float32Array, v: Float32Array, rows: number, C: number, Ckv: number) {
  const W = C + 2 * Ckv;
  const qkv = new Float32Array(rows * W);
  for (let r = 0; r < rows; r++) {
    qkv.set(q.subarray(r * C, (r + 1) * C), r * W);
    qkv.set(k.subarray(r * Ckv, (r + 1) * Ckv), r * W + C);
    qkv.set(v.subarray(r * Ckv, (r + 1) * Ckv), r * W + C + Ckv);
  }
  const parts = (a: Float32Array) => [a, a.subarray(C), a.subarray(C + Ckv)] as const;
  return { W, qkv, parts };
}

const addon = loadAddon();
// The addon is built by `npm ci`; without it there is nothing native to test.
const skip = addon ? false : 'native addon not built (npm run build:native): native kernel tests skipped';
const native: Backend | null = addon ? createNativeBackend(addon) : null;
if (native) registerBackend(native);
const rng = new Rng(11);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

/** The ISA paths this CPU can run: portable always, then each wider one up to the best detected. */
const ISA_ORDER = ['portable', 'avx2', 'avx512'];
const isas = addon ? ISA_ORDER.slice(0, ISA_ORDER.indexOf(addon.detectedIsa()) + 1) : [];
after(() => {
  if (addon) addon.setIsa(addon.detectedIsa());
  setBackend('js');
});

function bothBackends<T>(f: (b: Backend) => T): [T, T] {
  return [f(jsBackend), f(native!)];
}

// Every kernel on every instruction-set path this CPU can run (portable always).
for (const isa of isas.length ? isas : ['none']) {
  describe(`native kernels agree with the js reference (${isa} path)`, { skip }, () => {
    before(() => assert.ok(addon!.setIsa(isa)));

    it('GEMM, all transposes, odd sizes, batches', () => {
      for (const [M, N, K] of [
        [1, 1, 1],
        [7, 33, 129],
        [33, 7, 5],
        [129, 65, 300],
        [64, 64, 32],
        [200, 130, 70],
        [5, 300, 400], // fewer row blocks than threads: B's panels are split between the threads
        [128, 96, 64],
      ] as const) {
        for (const transA of [false, true]) {
          for (const transB of [false, true]) {
            const batch = 2;
            const lda = (transA ? M : K) + 1;
            const ldb = transB ? K : N;
            const aSize = (transA ? K : M) * lda;
            const bSize = (transB ? N : K) * ldb;
            const g: Omit<GemmArgs, 'c'> = {
              transA,
              transB,
              M,
              N,
              K,
              a: rand(3 + batch * aSize),
              aOffset: 3,
              lda,
              b: rand(bSize),
              bOffset: 0,
              ldb,
              cOffset: 0,
              ldc: N + 2,
              alpha: 0.75,
              accumulate: (M + N) % 2 === 0,
              batch,
              strideA: aSize,
              strideB: 0,
              strideC: M * (N + 2),
              bias: transB ? rand(N) : null,
              // The epilogue (done after the native product with native GELU/SiLU and addition) on some transposes.
              epilogue: transA ? { activation: transB ? 'gelu' : 'silu', addend: { data: rand(2 + batch * M * N), offset: 2, ld: N, stride: M * N } } : null,
            };
            const c0 = rand(batch * M * (N + 2));
            const [cj, cn] = bothBackends((b) => {
              const c = Float32Array.from(c0);
              b.gemm({ ...g, c });
              return c;
            });
            assertClose(cn, cj, 1e-4 * Math.sqrt(K), `M${M} N${N} K${K} tA${transA} tB${transB}`);
          }
        }
      }
    });

    it('a Linear layer\'s product (the addon\'s linear) with a GELU, or a residual addend, stored by the epilogue', () => {
      for (const [rows, K, N] of [[1, 64, 256], [5, 33, 70]] as const) {
        const x = rand(rows * K), w = rand(N * K), bias = rand(N), skip = rand(rows * N);
        for (const epilogue of [{ activation: 'gelu' as const }, { addend: { data: skip, offset: 0, ld: N, stride: 0 } }]) {
          const [cj, cn] = bothBackends((b) => {
            const c = new Float32Array(rows * N);
            b.gemm({ transA: false, transB: true, M: rows, N, K, a: x, aOffset: 0, lda: K, b: w, bOffset: 0, ldb: K, c, cOffset: 0, ldc: N, alpha: 1, accumulate: false, batch: 1, strideA: 0, strideB: 0, strideC: 0, bias, epilogue });
            return c;
          });
          assertClose(cn, cj, 1e-4 * Math.sqrt(K), `${rows}×${N}×${K} ${Object.keys(epilogue)[0]}`);
        }
      }
    });

    // The larger shape is split across threads (partial sums combined) on a multi-core machine.
    for (const [rows, cols] of [[37, 129], [600, 257]] as const) it(`layer norm, RMS norm, GELU, SiLU, softmax, cross-entropy, embedding, AdamW (${rows}×${cols})`, () => {
      const x = rand(rows * cols),
        w = rand(cols),
        bias = rand(cols),
        dy = rand(rows * cols);
      // Backward kernels either add into a gradient (accumulate) or overwrite it: start from junk to see both.
      const junk = rand(rows * cols);
      for (const accumulate of [true, false]) {
        const [lj, ln] = bothBackends((b) => {
          const out = new Float32Array(rows * cols),
            mean = new Float32Array(rows),
            rstd = new Float32Array(rows);
          b.layerNormForward(x, w, bias, out, mean, rstd, rows, cols, 1e-5);
          const dx = Float32Array.from(junk),
            dw = new Float32Array(cols),
            db = new Float32Array(cols);
          b.layerNormBackward(x, w, mean, rstd, dy, dx, dw, db, rows, cols, accumulate);
          return [out, dx, dw, db];
        });
        lj.forEach((t, i) => assertClose(ln[i]!, t, 1e-4, `layernorm ${i} accumulate ${accumulate}`));

        const [rj, rn] = bothBackends((b) => {
          const out = new Float32Array(rows * cols),
            rstd = new Float32Array(rows);
          b.rmsNormForward(x, w, out, rstd, rows, cols, 1e-5);
          const dx = Float32Array.from(junk),
            dw = Float32Array.from(w); // dW accumulates: start from non-zero values
          b.rmsNormBackward(x, w, rstd, dy, dx, dw, rows, cols, accumulate);
          const out0 = new Float32Array(rows * cols),
            dx0 = Float32Array.from(junk);
          b.rmsNormForward(x, null, out0, rstd, rows, cols, 1e-6);
          b.rmsNormBackward(x, null, rstd, dy, dx0, null, rows, cols, accumulate);
          return [out, rstd, dx, dw, out0, dx0];
        });
        rj.forEach((t, i) => assertClose(rn[i]!, t, 1e-4, `rmsnorm ${i} accumulate ${accumulate}`));

        const [sj, sn] = bothBackends((b) => {
          const xs = Float32Array.from(x, (v, i) => (i % 97 === 0 ? v * 40 : v)); // some large |x|: σ saturates
          const y = new Float32Array(x.length),
            dx = Float32Array.from(junk);
          b.unary('silu', xs, y);
          b.unaryBackward('silu', xs, y, dy, dx, accumulate);
          return [y, dx];
        });
        sj.forEach((t, i) => assertClose(sn[i]!, t, 1e-5, `silu ${i} accumulate ${accumulate}`));

        const [gj, gn] = bothBackends((b) => {
          const y = new Float32Array(x.length),
            dx = Float32Array.from(junk);
          b.unary('gelu', x, y);
          b.unaryBackward('gelu', x, y, dy, dx, accumulate);
          const s = new Float32Array(x.length);
          b.softmaxForward(x, s, rows, cols);
          return [y, dx, s];
        });
        gj.forEach((t, i) => assertClose(gn[i]!, t, 1e-5, `gelu/softmax ${i} accumulate ${accumulate}`));

        const targets = Int32Array.from({ length: rows }, (_, i) => (i % 5 === 0 ? -1 : (i * 7) % cols));
        const [cj, cn] = bothBackends((b) => {
          const lse = new Float32Array(rows);
          const loss = new Float32Array(1);
          b.crossEntropyForward(x, targets, lse, loss, rows, cols, -1, 1);
          const d = Float32Array.from(junk);
          b.crossEntropyBackward(x, targets, lse, Float32Array.of(1), d, rows, cols, -1, 0.1, accumulate);
          return { sum: loss[0]!, lse, d };
        });
        assert.ok(Math.abs(cn.sum - cj.sum) < 1e-3, `CE sum ${cn.sum} vs ${cj.sum}`);
        assertClose(cn.lse, cj.lse, 1e-4, 'lse');
        assertClose(cn.d, cj.d, 1e-6, `dlogits accumulate ${accumulate}`);
      }

      const ids = Int32Array.of(3, 0, 3, 36, 3);
      const [ej, en] = bothBackends((b) => {
        const out = new Float32Array(ids.length * cols),
          dw = new Float32Array(rows * cols);
        b.embeddingForward(x, ids, out, cols);
        b.embeddingBackward(dy.subarray(0, ids.length * cols), ids, dw, cols);
        return [out, dw];
      });
      ej.forEach((t, i) => assertClose(en[i]!, t, 1e-6, `embedding ${i}`));

      const [aj, an] = bothBackends((b) => {
        const p = Float32Array.from(x);
        const m0 = new Float32Array(x.length).fill(0.01),
          v0 = new Float32Array(x.length).fill(0.02);
        b.adamwStep(p, dy, m0, v0, { lr: 1e-3, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3 });
        const sq = new Float32Array(1);
        b.sumSquares([dy], sq);
        return [p, m0, v0, sq];
      });
      // Σ g² keeps float partial sums per block of 4 096 (added in double): relative error ~1e-7.
      aj.forEach((t, i) => assertClose(an[i]!, t, i === 3 ? 1e-6 * t[0]! : 1e-6, `adamw ${i}`));
    });

    it('RoPE: both layouts, shared or per-row angles, forward and inverse, accumulate, in place', () => {
      const [B, T, H, D] = [2, 5, 3, 8];
      for (const layout of ['half', 'interleaved'] as const)
        for (const perRow of [false, true])
          for (const [dir, acc] of [[1, false], [-1, true]] as const) {
            const x = rand(B * T * H * D);
            const angles = Float32Array.from({ length: (perRow ? B * T : T) * (D / 2) }, (_, i) => 0.37 * i);
            const [cos, sin] = [angles.map(Math.cos), angles.map(Math.sin)];
            const out0 = rand(x.length);
            const [want, got] = [Float32Array.from(out0), Float32Array.from(out0)];
            const d = { B, T, nHead: H, headDim: D, layout };
            jsBackend.rope(x, want, cos, sin, d, dir, acc);
            native!.rope(x, got, cos, sin, d, dir, acc);
            assertClose(got, want, 1e-6, `rope ${layout} perRow=${perRow} dir=${dir}`);
            const inPlace = Float32Array.from(x);
            native!.rope(inPlace, inPlace, cos, sin, d, dir, false);
            jsBackend.rope(x, want, cos, sin, d, dir, false);
            assertClose(inPlace, want, 1e-6, `rope in place ${layout}`);
          }
    });

    it('dropout: the same counter-based mask as js from the same seed, forward and backward', () => {
      for (const [n, p, seed] of [[1000, 0.1, 7], [100_003, 0.5, 4_000_000_000], [70_001, 0.25, 0]] as const) {
        const x = rand(n),
          dy = rand(n),
          junk = rand(n);
        for (const accumulate of [true, false]) {
          const [j, nat] = bothBackends((b) => {
            const out = new Float32Array(n),
              mask = new Float32Array(n),
              dx = Float32Array.from(junk);
            b.dropoutForward(x, out, mask, p, seed);
            b.dropoutBackward(dy, mask, dx, accumulate);
            return [out, mask, dx];
          });
          // The mask and output exactly; dx to rounding (the native add may be a fused multiply-add).
          [0, 1].forEach((i) => assert.deepEqual(nat[i], j[i], `dropout n ${n} p ${p} tensor ${i}`));
          assertClose(nat[2]!, j[2]!, 1e-6, `dropout backward n ${n} p ${p} accumulate ${accumulate}`);
        }
      }
    });

    // Narrow rows (a 128-wide bias over many rows) take the split-by-rows column sum.
    for (const [rows, cols] of [[45, 300], [301, 128]] as const) it(`residual and bias additions, bias-gradient column sums (${rows}×${cols})`, () => {
      const x = rand(rows * cols),
        y = rand(rows * cols),
        bias = rand(cols);
      const [j, n] = bothBackends((b) => {
        const same = new Float32Array(rows * cols),
          rowAdd = new Float32Array(rows * cols),
          colSum = rand(cols).fill(0.5);
        b.binary('add', x, [rows, cols], y, [rows, cols], same, [rows, cols]);
        b.binary('add', x, [rows, cols], bias, [1, cols], rowAdd, [rows, cols]);
        b.reduceSumTo(x, [rows, cols], colSum, [1, cols]);
        return [same, rowAdd, colSum];
      });
      j.forEach((t, i) => assertClose(n[i]!, t, 1e-4, `add ${i}`));
    });

    // T = 130 spans three query tiles of the native kernel; Tq ≠ Tk both ways (the causal
    // diagonal shifts; with Tq > Tk the first queries see no key); grouped (2 and 3 query heads
    // per key/value head) and multi-query heads; B·nKvHead from 1 to 6 pool tasks.
    const shapes = [
      // B, Tq, Tk, H, Hkv, D
      [2, 7, 7, 3, 3, 5],
      [1, 33, 33, 2, 2, 16],
      [1, 1, 1, 1, 1, 1],
      [1, 130, 130, 2, 2, 8],
      [2, 9, 20, 4, 2, 8],
      [2, 70, 5, 6, 2, 4],
      [3, 66, 130, 4, 1, 8],
    ] as const;
    for (const causal of [true, false]) {
      for (const variant of ['plain', 'padded', 'dropout'] as const) {
        it(`fused attention forward and backward (causal: ${causal}, ${variant}; self, cross, grouped, packed)`, () => {
          for (const [B, Tq, Tk, H, Hkv, D] of shapes) {
            const [C, Ckv] = [H * D, Hkv * D];
            const q = rand(B * Tq * C),
              k = rand(B * Tk * Ckv),
              v = rand(B * Tk * Ckv),
              dOut = rand(B * Tq * C);
            // Padding hides a scattered set of keys, and key 0 of row 0 (so its causal first query sees nothing).
            const keyPadding = variant === 'padded' ? Uint8Array.from({ length: B * Tk }, (_, i) => (i === 0 || i % 5 === 3 ? 1 : 0)) : null;
            const dropout = variant === 'dropout' ? { p: 0.3, seed: 0xdeadbeef } : null;
            const dims = { B, Tq, Tk, nHead: H, nKvHead: Hkv, headDim: D, causal, scale: 1 / Math.sqrt(D), keyPadding, dropout };
            const name = `B${B} Tq${Tq} Tk${Tk} H${H}/${Hkv} D${D}`;
            for (const accumulate of [true, false]) {
              const [j, nat] = bothBackends((b) => {
                const out = new Float32Array(B * Tq * C),
                  dq = rand(q.length),
                  dk = rand(k.length),
                  dv = rand(v.length);
                [dq, dk, dv].forEach((t) => t.fill(0.25)); // the same starting values on both backends
                const saved = b.attentionForward(q, k, v, out, dims);
                b.attentionBackward(saved, q, k, v, out, dOut, dq, dk, dv, dims, accumulate);
                return [out, dq, dk, dv];
              });
              // With dropout, one mask bit that differed would move an output by ~1/Tk·|v|: far past this tolerance.
              j.forEach((t, i) => assertClose(nat[i]!, t, 2e-5, `attention ${name} tensor ${i} accumulate ${accumulate}`));
            }
            if (Tq !== Tk) continue;
            const { W, qkv, parts } = packQkv(q, k, v, B * Tq, C, Ckv);
            const packed = { ...dims, qStride: W, kvStride: W };
            const junk = rand(qkv.length);
            const [pj, pn] = bothBackends((b) => {
              const out = new Float32Array(B * Tq * C),
                dqkv = Float32Array.from(junk);
              const saved = b.attentionForward(...parts(qkv), out, packed);
              b.attentionBackward(saved, ...parts(qkv), out, dOut, ...parts(dqkv), packed, false);
              return [out, dqkv];
            });
            pj.forEach((t, i) => assertClose(pn[i]!, t, 2e-5, `packed attention ${name} tensor ${i}`));
          }
        });
      }
    }

    // Mixed precision: both backends round the same operands to bf16 (native: vdpbf16ps on the
    // avx512 path where the CPU has AVX-512 BF16, FP32 multiply-adds of the rounded numbers on the
    // others) and sum in FP32 (native) or double (js). The weights and dS that get rounded are
    // themselves computed in another order, so now and then one lands on the other side of a
    // bf16 rounding boundary and moves its row by up to 2⁻⁸·p·|v| (≈ 1e-2 with few keys). So:
    // almost every element within 1e-3 (seen ≤ 4e-4 without a flip), none off by more than
    // 2⁻⁶ of the tensor's largest value, and bf16 at least 3e-3 off FP32 somewhere (seen
    // 5e-3 … 2e-2), so the flag took effect.
    const closeBf16 = (got: Float32Array, want: Float32Array, msg: string) => {
      const big = want.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
      let loose = 0;
      for (let i = 0; i < want.length; i++) {
        const e = Math.abs(got[i]! - want[i]!);
        assert.ok(e <= 2 ** -6 * big + 1e-6, `${msg} element ${i}: ${got[i]} vs ${want[i]}`);
        if (e > 1e-3) loose++;
      }
      assert.ok(loose <= Math.max(4, want.length / 100), `${msg}: ${loose} of ${want.length} elements off by more than 1e-3`);
    };
    it('fused attention with bf16 products agrees with the js bf16 twin (causal and not, padded, dropout, packed)', () => {
      for (const causal of [true, false]) {
        for (const variant of ['plain', 'padded', 'dropout'] as const) {
          for (const [B, Tq, Tk, H, Hkv, D] of shapes) {
            const [C, Ckv] = [H * D, Hkv * D];
            const q = rand(B * Tq * C), k = rand(B * Tk * Ckv), v = rand(B * Tk * Ckv), dOut = rand(B * Tq * C);
            const keyPadding = variant === 'padded' ? Uint8Array.from({ length: B * Tk }, (_, i) => (i === 0 || i % 5 === 3 ? 1 : 0)) : null;
            const dropout = variant === 'dropout' ? { p: 0.3, seed: 0xdeadbeef } : null;
            const fp32 = { B, Tq, Tk, nHead: H, nKvHead: Hkv, headDim: D, causal, scale: 1 / Math.sqrt(D), keyPadding, dropout };
            const name = `bf16 causal ${causal} ${variant} B${B} Tq${Tq} Tk${Tk} H${H}/${Hkv} D${D}`;
            const run = (b: Backend, bf16: boolean) => {
              const out = new Float32Array(B * Tq * C), dq = new Float32Array(q.length).fill(0.25), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
              const dims = { ...fp32, bf16 };
              b.attentionBackward(b.attentionForward(q, k, v, out, dims), q, k, v, out, dOut, dq, dk, dv, dims, true);
              return [out, dq, dk, dv];
            };
            const [j, nat] = [run(jsBackend, true), run(native!, true)];
            j.forEach((t, i) => closeBf16(nat[i]!, t, `${name} tensor ${i}`));
            const j32 = run(jsBackend, false); // (a 1×1 head has nothing to round; padded rows may see a key or two)
            if (Tk > 1 && variant !== 'padded') assert.ok(j32.some((t, i) => t.some((x, e) => Math.abs(x - j[i]![e]!) > 3e-3)), `${name}: bf16 should move the result off FP32's`);
            if (Tq !== Tk) continue;
            const { W, qkv, parts } = packQkv(q, k, v, B * Tq, C, Ckv);
            const packed = { ...fp32, qStride: W, kvStride: W, bf16: true };
            const [pj, pn] = bothBackends((b) => {
              const out = new Float32Array(B * Tq * C), dqkv = new Float32Array(qkv.length);
              b.attentionBackward(b.attentionForward(...parts(qkv), out, packed), ...parts(qkv), out, dOut, ...parts(dqkv), packed, false);
              return [out, dqkv];
            });
            pj.forEach((t, i) => closeBf16(pn[i]!, t, `packed ${name} tensor ${i}`));
          }
        }
      }
    });

    it('attention dropout draws its mask from the shared hash: a different seed or p changes the output', () => {
      const [B, T, H, D] = [1, 20, 2, 4];
      const [q, k, v] = [rand(B * T * H * D), rand(B * T * H * D), rand(B * T * H * D)];
      const run = (dropout: { p: number; seed: number } | null) => {
        const out = new Float32Array(q.length);
        native!.attentionForward(q, k, v, out, { B, Tq: T, Tk: T, nHead: H, nKvHead: H, headDim: D, causal: true, scale: 0.5, dropout });
        return out;
      };
      const plain = run(null);
      assert.deepEqual(run({ p: 0, seed: 7 }), plain);
      assert.notDeepEqual(run({ p: 0.5, seed: 7 }), plain);
      assert.notDeepEqual(run({ p: 0.5, seed: 8 }), run({ p: 0.5, seed: 7 }));
    });
  });
}

describe('the whole model on the native backend', { skip }, () => {
  for (const dropout of [0, 0.2]) it(`a training step gives the js backend's loss and gradients (dropout ${dropout}: the same attention-weight and residual masks)`, () => {
    const cfg = parseGPTConfig({ n_layer: 2, n_head: 2, n_embd: 24, block_size: 16, vocab_size: 29, dropout, bias: true });
    const ids = Int32Array.from({ length: 32 }, (_, i) => (i * 5) % 29);
    const tg = Int32Array.from({ length: 32 }, (_, i) => (i * 5 + 3) % 29);
    const [j, n] = (['js', 'native'] as const).map((name) => {
      setBackend(name);
      const m = new GPT(cfg, new Rng(2));
      const { loss } = m.forward(ids, [2, 16], tg);
      backward(loss!);
      return { loss: loss!.item(), grads: m.parameters().map((p) => p.grad!) };
    }) as [{ loss: number; grads: Float32Array[] }, { loss: number; grads: Float32Array[] }];
    setBackend('js');
    assert.ok(Math.abs(j.loss - n.loss) < 1e-5, `loss ${n.loss} vs ${j.loss}`);
    j.grads.forEach((g, i) => assertClose(n.grads[i]!, g, 1e-5, `grad ${i}`));
  });

  it('passes the PyTorch reference check', { skip: hasShared(REFERENCE_DIR) ? false : 'shared/reference absent' }, async () => {
    setBackend('native');
    try {
      const report = await runReferenceCheck(REFERENCE_DIR);
      assert.ok(report.pass, JSON.stringify(report.groups));
    } finally {
      setBackend('js');
    }
  });
});
