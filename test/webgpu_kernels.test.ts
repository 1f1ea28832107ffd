import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { EpilogueActivation, GemmArgs } from '../src/backend/backend.js';
import { jsBackend } from '../src/backend/js/index.js';
// The js reference functions themselves (the Backend entry points write the loss and Σg² into storage instead of returning them).
import { sumSquares as jsSumSquares } from '../src/backend/js/adamw.js';
import { crossEntropyBackward as jsCrossEntropyBackward, crossEntropyForward as jsCrossEntropyForward } from '../src/backend/js/cross_entropy.js';
import { GpuContext, type GpuSpan, span } from '../src/backend/webgpu/device.js';
import type { AttentionDims } from '../src/backend/backend.js';
import { attentionBackward, attentionForward, attentionLanes, attentionSplit, MAX_ATTENTION_SPLITS, setAttentionLanes, setAttentionSplit } from '../src/backend/webgpu/kernels/attention.js';
import { attentionCached } from '../src/backend/webgpu/kernels/attention_cached.js';
import { linearInt8 } from '../src/backend/webgpu/kernels/int8.js';
import { adamwStep } from '../src/backend/webgpu/kernels/adamw.js';
import { crossEntropyBackward, crossEntropyForward } from '../src/backend/webgpu/kernels/cross_entropy.js';
import { dropoutBackward, dropoutForward } from '../src/backend/webgpu/kernels/dropout.js';
import { embeddingBackward, embeddingForward, embeddingLinks } from '../src/backend/webgpu/kernels/embedding.js';
import { embeddingQuantizedStored } from '../src/backend/webgpu/kernels/embedding_quantized.js';
import { dequantizeRow, quantizeMatrix, quantRowBytes, storedRow } from '../src/backend/quantized_matrix.js';
import { clipFactor, scaleByDevice, sumSquares } from '../src/backend/webgpu/kernels/grad_norm.js';
import { binary, columnChunks, MIN_CHUNKED_ELEMENTS, reduceSumTo, scaleInPlace, unary, unaryBackward } from '../src/backend/webgpu/kernels/elementwise.js';
import { chooseGemmConfig, gemm } from '../src/backend/webgpu/kernels/gemm.js';
import { MAX_SPLITS, MIN_CHUNK, MIN_SPLIT_FLOP, setSplitK, splitFor } from '../src/backend/webgpu/kernels/gemm_split_k.js';
import { gemmSkinny, SK_ROWS, useSkinny } from '../src/backend/webgpu/kernels/gemm_skinny.js';
import { layerNormBackward, layerNormForward } from '../src/backend/webgpu/kernels/layernorm.js';
import { rmsNormBackward, rmsNormForward } from '../src/backend/webgpu/kernels/rmsnorm.js';
import { softmaxBackward, softmaxForward } from '../src/backend/webgpu/kernels/softmax.js';
import { rowLanes } from '../src/backend/webgpu/kernels/workgroup_reduce.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

/*
 * Every WebGPU kernel against the js backend (the oracle), on random inputs
 * with sizes that are not multiples of the kernels' tiles. Without a GPU, run
 * it on SwiftShader (a Vulkan implementation on the CPU that Debian's chromium
 * ships): VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json. With no
 * adapter the tests skip with a message, unless ATTN_REQUIRE_WEBGPU=1 (CI),
 * where they fail.
 */

async function openContext(): Promise<{ ctx: GpuContext | null; why: string }> {
  try {
    return { ctx: await GpuContext.create(), why: '' };
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    if (process.env.ATTN_REQUIRE_WEBGPU === '1') throw new Error(`ATTN_REQUIRE_WEBGPU=1 but ${e.message}`);
    return { ctx: null, why: `WebGPU kernel tests skipped: ${e.message}` };
  }
}

const { ctx: maybeCtx, why } = await openContext();
const skip = maybeCtx ? false : why;
const ctx = maybeCtx!;
after(() => maybeCtx?.destroy());

const rng = new Rng(17);
const rand = (n: number, std = 1) => Float32Array.from({ length: n }, () => rng.normal() * std);

/** `data` on the GPU, starting at element `at` of its buffer (odd offsets test the kernels' offset handling). */
function up(data: Float32Array | Int32Array | Uint32Array, at = 3): GpuSpan {
  const Ctor = data.constructor as new (n: number) => typeof data;
  const padded = new Ctor(data.length + at + 1);
  padded.set(data as never, at);
  return span(ctx.upload(padded), at, data.length);
}

const down = (s: GpuSpan) => ctx.read(s.buffer, s.offset, s.length);

/** Worst |got − want| / (atol + rtol·|want|) must be ≤ 1. */
function assertNear(got: ArrayLike<number>, want: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i]! - want[i]!) / (atol + rtol * Math.abs(want[i]!));
    if (!(r <= worst)) {
      worst = r;
      at = i;
    }
  }
  assert.ok(worst <= 1, `${what}: element ${at} is ${got[at]} vs ${want[at]} (rtol ${rtol}, atol ${atol})`);
}

/**
 * gemm() against js on one shape and transpose pair, batch 2 with offsets,
 * strides and alpha; the second and fourth transpose pairs use padded rows
 * and offsets that break 16-byte alignment. `minSplits`: assert that the
 * product is split along K into at least that many chunks. `activation`
 * (null: none) and `withAddend`: the epilogue, the addend with rows and batch
 * entries of its own stride.
 */
async function checkGemm(M: number, N: number, K: number, transA: boolean, transB: boolean, minSplits = 1, activation: EpilogueActivation | null = null, withAddend = false): Promise<void> {
  const pad = (transA ? 1 : 0) + (transB ? 0 : 1);
  const lda = (transA ? M : K) + pad;
  const ldb = (transB ? K : N) + pad;
  const ldc = N + 3;
  const batch = 2;
  const aSize = (transA ? K : M) * lda;
  const bSize = (transB ? N : K) * ldb;
  const cSize = M * ldc;
  const strideA = aSize + pad;
  const strideB = transA ? 0 : bSize; // 0: both batch entries share B
  const strideC = cSize + 1;
  const aOffset = pad;
  const bOffset = 2 * pad;
  const cOffset = 1;
  const a = rand(aOffset + strideA * batch);
  const b = rand(bOffset + bSize * batch);
  const c0 = rand(cOffset + strideC * batch);
  const bias = rand(N + 2);
  const accumulate = transB;
  const args: Omit<GemmArgs, 'a' | 'b' | 'c' | 'bias' | 'epilogue'> = {
    transA, transB, M, N, K, aOffset, lda, bOffset, ldb, cOffset, ldc, alpha: 0.75, accumulate, batch, strideA, strideB, strideC,
  };
  if (minSplits > 1) {
    const c = chooseGemmConfig(ctx, M, N, batch);
    const splits = splitFor(Math.ceil(M / (c.WY * c.TM)) * Math.ceil(N / (c.WX * c.TN)) * batch, K, c.BK, 2 * M * N * K * batch).splits;
    assert.ok(splits >= minSplits, `${M}×${N}×${K}: ${splits} chunks, expected ≥ ${minSplits}`);
  }
  const addLayout = { offset: 3, ld: N + 5, stride: M * (N + 5) + 2 };
  const add = rand(addLayout.offset + addLayout.stride * batch);
  const want = c0.slice();
  jsBackend.gemm({ ...args, a, b, c: want, bias: transA ? bias.subarray(2) : null, epilogue: { activation, addend: withAddend ? { ...addLayout, data: add } : null } });
  const ga = ctx.upload(a);
  const gb = ctx.upload(b);
  const gc = ctx.upload(c0);
  const gbias = ctx.upload(bias);
  const gadd = ctx.upload(add);
  gemm(ctx, { ...args, a: ga, b: gb, c: gc, bias: transA ? gbias : null, biasOffset: 2, activation, addend: withAddend ? { ...addLayout, buffer: gadd } : null });
  const got = await ctx.read(gc, 0, c0.length);
  const epi = `${activation ?? ''}${withAddend ? '+addend' : ''}`;
  assertNear(got, want, 1e-5 * Math.sqrt(K), 1e-5 * Math.sqrt(K), `gemm ${M}×${N}×${K} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'} ${epi}`);
  for (const buf of [ga, gb, gc, gbias, gadd]) ctx.release(buf);
}

describe('GpuContext', { skip }, () => {
  it('pools buffers by size class, reusing them only after the work that used them is submitted', () => {
    const a = ctx.buffer(1000);
    ctx.release(a);
    assert.notEqual(ctx.buffer(1000), a, 'handed out again before a flush');
    ctx.flush();
    assert.equal(ctx.buffer(990), a, 'same size class after the flush');
  });

  it('an allocation over the device limits is a UserError naming the limit', () => {
    assert.throws(() => ctx.buffer(ctx.limits.maxBufferSize + 4), (e: Error) => e instanceof UserError && /maxBufferSize|maxStorageBufferBindingSize/.test(e.message));
  });

  it('a lost device is a UserError on the next call', async () => {
    const other = await GpuContext.create();
    other.destroy();
    await new Promise((r) => setTimeout(r, 50)); // the lost promise resolves on a later tick
    assert.throws(() => other.upload(new Float32Array(4)), (e: Error) => e instanceof UserError && /device was lost/.test(e.message));
  });
});

describe('WebGPU kernels agree with the js reference', { skip }, () => {
  it('GEMM: transposes, odd sizes, offsets, strides, batches (stride 0 = reuse), alpha, accumulate, bias', async () => {
    const cases: [number, number, number][] = [
      [1, 1, 1], [7, 33, 129], [33, 7, 5], [65, 130, 64], [64, 64, 32], [1, 96, 40], [8, 8, 4], [520, 516, 12],
    ];
    for (const [M, N, K] of cases) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          // The 128×128-block kernel (M, N ≥ 512) is slow on SwiftShader: two of its four transposes.
          if (M >= 512 && transA !== transB) continue;
          await checkGemm(M, N, K, transA, transB);
        }
      }
    }
  });

  it('GEMM split along K (few output blocks, long K): partial products summed in order, alpha, accumulate and bias applied once', async () => {
    const big = MIN_SPLIT_FLOP;
    const was = setSplitK({ target: 512 });
    try {
      assert.deepEqual(splitFor(4, 1000, 16, big), { splits: 3, chunk: 336 }, 'chunks are whole K tiles; the last is shorter');
      assert.deepEqual(splitFor(144, 4096, 16, big), { splits: 4, chunk: 1024 });
      assert.deepEqual(splitFor(4, 1 << 20, 8, big), { splits: MAX_SPLITS, chunk: (1 << 20) / MAX_SPLITS });
      assert.deepEqual(splitFor(600, 4096, 8, big), { splits: 1, chunk: 4096 }, 'enough blocks: no split');
      assert.deepEqual(splitFor(4, 2 * MIN_CHUNK - 1, 8, big), { splits: 1, chunk: 2 * MIN_CHUNK - 1 }, 'K too short to split');
      assert.deepEqual(splitFor(4, 1000, 16, big - 1), { splits: 1, chunk: 1000 }, 'a product too small to be worth a second kernel');
      // The products below are small (on SwiftShader): split them all the same.
      setSplitK({ minFlop: 0 });
      // K not a multiple of the K tile, of 4 (scalar loads along K), or long enough for many chunks; every transpose.
      const cases: [number, number, number][] = [[40, 36, 1000], [33, 70, 777], [64, 64, 4100]];
      for (const [M, N, K] of cases) {
        for (const transA of [false, true]) for (const transB of [false, true]) await checkGemm(M, N, K, transA, transB, 2);
      }
    } finally {
      setSplitK(was);
    }
  });

  it('GEMM epilogue (activation after the bias, then an addend) in the tiled, split-K and skinny kernels', async () => {
    const was = setSplitK({ target: 512, minFlop: 0 });
    try {
      // [M, N, K, transA, transB, minSplits]: tiled; split along K; skinny (few rows times B stored [N, K]).
      const cases: [number, number, number, boolean, boolean, number][] = [[33, 70, 40, true, false, 1], [40, 36, 1000, false, true, 2], [3, 70, 130, false, true, 1], [1, 33, 768, true, true, 1]];
      for (const [M, N, K, transA, transB, minSplits] of cases) {
        assert.equal(useSkinny({ M, N, transB }), M <= SK_ROWS && transB, `${M}×${N}×${K}: the path under test`);
        for (const activation of ['gelu', 'relu', 'silu', null] as const) await checkGemm(M, N, K, transA, transB, minSplits, activation, activation !== 'relu');
      }
    } finally {
      setSplitK(was);
    }
  });

  it('column sums (bias gradients) of many rows: chunks of rows summed in a second pass, added into dst at an offset', async () => {
    assert.deepEqual(columnChunks(4096, 384), { chunks: 11, chunkRows: 384 }, 'a width-384 bias over 4 096 rows');
    assert.deepEqual(columnChunks(1500, 384), { chunks: 5, chunkRows: 304 });
    assert.deepEqual(columnChunks(300, 2000), { chunks: 1, chunkRows: 300 }, 'too few rows to cut');
    assert.deepEqual(columnChunks(4096, 4800), { chunks: 1, chunkRows: 4096 }, 'enough blocks of columns');
    assert.deepEqual(columnChunks(4096, 45), { chunks: 1, chunkRows: 4096 }, 'a matrix too small to be worth a second pass');
    for (const [rows, cols] of [[4100, 130], [1500, 384], [MIN_CHUNKED_ELEMENTS / 4, 4]] as const) {
      assert.ok(columnChunks(rows, cols).chunks > 1, `${rows}×${cols} is summed in chunks`);
      const src = rand(rows * cols);
      const dst0 = rand(cols);
      const want = dst0.slice();
      jsBackend.reduceSumTo(src, [rows, cols], want, [1, cols]);
      const dst = up(dst0);
      reduceSumTo(ctx, up(src), [rows, cols], dst, [1, cols]);
      assertNear(await down(dst), want, 1e-5, 1e-5 * Math.sqrt(rows), `column sums ${rows}×${cols}`);
    }
  });

  it('skinny GEMM (few rows · Bᵀ): row blocks, odd and aligned K, transposed A, offsets, batches, alpha, accumulate, bias', async () => {
    assert.ok(useSkinny({ M: 1, N: 768, transB: true }) && useSkinny({ M: SK_ROWS, N: 2, transB: true }), 'decode products take the skinny path');
    assert.ok(!useSkinny({ M: 1, N: 768, transB: false }) && !useSkinny({ M: SK_ROWS + 1, N: 768, transB: true }) && !useSkinny({ M: 1, N: 1, transB: true }));
    // K sets the invocations per column (8 … 64, several columns to a workgroup when short); N not a multiple of the columns per workgroup.
    const cases: [number, number, number][] = [[1, 2, 1], [1, 70, 768], [2, 33, 7], [3, 5, 130], [SK_ROWS, 9, 64], [11, 17, 36], [1, 3, 3072], [2, 70, 128], [1, 13, 256]];
    for (const [M, N, K] of cases) {
      // Aligned: 16-byte loads of B and A; then padded rows and odd offsets (scalar loads); then A transposed.
      for (const form of ['aligned', 'padded', 'transA'] as const) {
        const transA = form === 'transA';
        const pad = form === 'aligned' ? 0 : 1;
        const lda = (transA ? M : K) + pad;
        const ldb = K + pad;
        const ldc = N + 2;
        const batch = 2;
        const aSize = (transA ? K : M) * lda;
        const strideA = aSize + 4 * pad;
        const strideB = form === 'padded' ? 0 : N * ldb; // 0: both batch entries share B
        const strideC = M * ldc + 1;
        const [aOffset, bOffset, cOffset] = [4 * pad + pad, 8 * pad, 1];
        const a = rand(aOffset + strideA * batch);
        const b = rand(bOffset + N * ldb * batch);
        const c0 = rand(cOffset + strideC * batch);
        const bias = rand(N + 2);
        const accumulate = form !== 'aligned';
        const withBias = form !== 'padded';
        const args: Omit<GemmArgs, 'a' | 'b' | 'c' | 'bias' | 'epilogue'> = {
          transA, transB: true, M, N, K, aOffset, lda, bOffset, ldb, cOffset, ldc, alpha: 0.75, accumulate, batch, strideA, strideB, strideC,
        };
        const want = c0.slice();
        jsBackend.gemm({ ...args, a, b, c: want, bias: withBias ? bias.subarray(2) : null });
        const [ga, gb, gc, gbias] = [ctx.upload(a), ctx.upload(b), ctx.upload(c0), ctx.upload(bias)];
        gemmSkinny(ctx, { ...args, a: ga, b: gb, c: gc, bias: withBias ? gbias : null, biasOffset: 2 });
        const got = await ctx.read(gc, 0, c0.length);
        assertNear(got, want, 1e-5 * Math.sqrt(K), 1e-5 * Math.sqrt(K), `skinny gemm ${M}×${N}×${K} ${form}`);
        for (const buf of [ga, gb, gc, gbias]) ctx.release(buf);
      }
    }
  });

  it('unary ops forward and backward (accumulate and overwrite), binary ops with broadcasting, reduceSumTo, scale', async () => {
    const n = 1001;
    const x = rand(n, 2);
    const xs = up(x);
    for (const op of ['exp', 'log', 'relu', 'gelu', 'silu', 'tanh', 'neg', 'sqrt'] as const) {
      const xin = op === 'log' || op === 'sqrt' ? x.map(Math.abs) : x;
      const xg = op === 'log' || op === 'sqrt' ? up(xin) : xs;
      const y = new Float32Array(n);
      jsBackend.unary(op, xin, y);
      const yg = up(new Float32Array(n), 1);
      unary(ctx, op, xg, yg);
      assertNear(await down(yg), y, 2e-6, 1e-6, `unary ${op}`);
      const dy = rand(n);
      const dx0 = rand(n);
      for (const accumulate of [true, false]) {
        const dx = dx0.slice();
        jsBackend.unaryBackward(op, xin, y, dy, dx, accumulate);
        const dxg = up(dx0);
        unaryBackward(ctx, op, xg, up(y), up(dy), dxg, accumulate);
        assertNear(await down(dxg), dx, 2e-6, 1e-5, `unaryBackward ${op} accumulate ${accumulate}`);
      }
    }
    const shapes: [number[], number[], number[]][] = [
      [[3, 5, 7], [3, 5, 7], [3, 5, 7]],
      [[3, 5, 7], [1, 1, 7], [3, 5, 7]],
      [[3, 1, 7], [1, 5, 1], [3, 5, 7]],
      [[2, 3, 4, 5], [2, 1, 4, 1], [2, 3, 4, 5]],
    ];
    for (const [aShape, bShape, outShape] of shapes) {
      const size = (s: number[]) => s.reduce((p, q) => p * q, 1);
      const a = rand(size(aShape));
      const b = rand(size(bShape)).map((v) => v + Math.sign(v) * 0.5);
      for (const op of ['add', 'sub', 'mul', 'div'] as const) {
        const want = new Float32Array(size(outShape));
        jsBackend.binary(op, a, aShape, b, bShape, want, outShape);
        const out = up(new Float32Array(want.length));
        binary(ctx, op, up(a), aShape, up(b), bShape, out, outShape);
        assertNear(await down(out), want, 1e-6, 1e-6, `binary ${op} ${aShape}∘${bShape}`);
      }
      // The sum that undoes the broadcast of b.
      const src = rand(size(outShape));
      const dst0 = rand(size(bShape));
      const want = dst0.slice();
      jsBackend.reduceSumTo(src, outShape, want, bShape);
      const dst = up(dst0);
      reduceSumTo(ctx, up(src), outShape, dst, bShape);
      assertNear(await down(dst), want, 1e-5, 1e-5, `reduceSumTo ${outShape}→${bShape}`);
    }
    const sx = up(x);
    scaleInPlace(ctx, sx, 0.3);
    const want = x.slice();
    jsBackend.scaleInPlace(want, 0.3);
    assertNear(await down(sx), want, 1e-6, 0, 'scaleInPlace');
  });

  it('row kernels size their lanes by width: 32 to 256 lanes, several rows to a workgroup', () => {
    assert.deepEqual([1, 65, 128, 256, 257, 384, 768, 1024, 1025, 2048, 50257].map(rowLanes), [32, 32, 32, 32, 64, 64, 128, 128, 256, 256, 256]);
  });

  it('softmax forward and backward (odd widths, a fully masked row; 32, 64, 128 and 256 lanes)', async () => {
    // Rows per workgroup: 8, 4, 2, 1; each case's last workgroup is part-filled.
    for (const [rows, cols] of [[3, 1], [5, 300], [3, 1000], [9, 2500]] as const) {
      const x = rand(rows * cols, 3);
      x.fill(-Infinity, 0, cols); // row 0 sees nothing: zeros, not NaN
      const y = new Float32Array(rows * cols);
      jsBackend.softmaxForward(x, y, rows, cols);
      const yg = up(new Float32Array(rows * cols));
      softmaxForward(ctx, up(x), yg, rows, cols);
      assertNear(await down(yg), y, 1e-5, 1e-7, `softmax ${rows}×${cols}`);
      const dy = rand(rows * cols);
      const dx = rand(rows * cols);
      const dxg = up(dx);
      jsBackend.softmaxBackward(y, dy, dx, rows, cols);
      softmaxBackward(ctx, up(y), up(dy), dxg, rows, cols);
      assertNear(await down(dxg), dx, 1e-5, 1e-6, `softmaxBackward ${rows}×${cols}`);
    }
  });

  it('LayerNorm and RMSNorm forward and backward, with and without weight and bias', async () => {
    // 4 100 rows: the parameter gradients in chunks of rows (columnChunks), summed by a second pass.
    assert.ok(columnChunks(4100, 130).chunks > 1);
    // 32, 128, 64, 256 and 32 lanes (rowLanes), the last workgroup part-filled.
    for (const [rows, cols] of [[7, 33], [3, 700], [9, 400], [5, 2100], [4100, 130]] as const) {
      const x = rand(rows * cols, 2).map((v) => v + 1.5);
      const w = rand(cols);
      const b = rand(cols);
      const dy = rand(rows * cols);
      const dx0 = rand(rows * cols);
      for (const affine of [true, false]) {
        for (const accumulate of [true, false]) {
          const weight = affine ? w : null;
          const out = new Float32Array(rows * cols);
          const mean = new Float32Array(rows);
          const rstd = new Float32Array(rows);
          jsBackend.layerNormForward(x, weight, affine ? b : null, out, mean, rstd, rows, cols, 1e-5);
          const [outG, meanG, rstdG] = [up(out.map(() => 0)), up(mean.map(() => 0)), up(rstd.map(() => 0))];
          const xg = up(x);
          const wg = affine ? up(w) : null;
          layerNormForward(ctx, xg, wg, affine ? up(b) : null, outG, meanG, rstdG, rows, cols, 1e-5);
          const tag = `${rows}×${cols} affine ${affine}`;
          assertNear(await down(outG), out, 1e-5, 1e-5, `layerNorm ${tag}`);
          assertNear(await down(meanG), mean, 1e-5, 1e-6, `layerNorm mean ${tag}`);
          assertNear(await down(rstdG), rstd, 1e-5, 1e-6, `layerNorm rstd ${tag}`);
          const dx = dx0.slice();
          const dW = affine ? w.map((v) => v * 0.1) : null;
          const dB = affine ? b.map((v) => v * 0.1) : null;
          const dWg = dW ? up(dW) : null;
          const dBg = dB ? span(ctx.upload(dB), 0, cols) : null;
          const dxg = up(dx);
          layerNormBackward(ctx, xg, wg, meanG, rstdG, up(dy), dxg, dWg, dBg, rows, cols, accumulate);
          jsBackend.layerNormBackward(x, weight, mean, rstd, dy, dx, dW, dB, rows, cols, accumulate);
          assertNear(await down(dxg), dx, 1e-4, 1e-5, `layerNormBackward dx ${tag} accumulate ${accumulate}`);
          // dWeight and dBias are sums of `rows` unit-sized terms: float32 rounding error grows like √rows whatever the order (chunked or not), so the absolute tolerance is 1e-5·√rows.
          const sumTol = 1e-5 * Math.sqrt(rows);
          if (dWg) assertNear(await down(dWg), dW!, 1e-4, sumTol, `layerNormBackward dWeight ${tag}`);
          if (dBg) assertNear(await down(dBg), dB!, 1e-4, sumTol, `layerNormBackward dBias ${tag}`);

          jsBackend.rmsNormForward(x, weight, out, rstd, rows, cols, 1e-6);
          rmsNormForward(ctx, xg, wg, outG, rstdG, rows, cols, 1e-6);
          assertNear(await down(outG), out, 1e-5, 1e-5, `rmsNorm ${tag}`);
          assertNear(await down(rstdG), rstd, 1e-5, 1e-6, `rmsNorm rstd ${tag}`);
          const rdx = dx0.slice();
          const rdW = affine ? w.map((v) => v * 0.1) : null;
          const rdWg = rdW ? up(rdW) : null;
          const rdxg = up(rdx);
          rmsNormBackward(ctx, xg, wg, rstdG, up(dy), rdxg, rdWg, rows, cols, accumulate);
          jsBackend.rmsNormBackward(x, weight, rstd, dy, rdx, rdW, rows, cols, accumulate);
          assertNear(await down(rdxg), rdx, 1e-4, 1e-5, `rmsNormBackward dx ${tag} accumulate ${accumulate}`);
          if (rdWg) assertNear(await down(rdWg), rdW!, 1e-4, sumTol, `rmsNormBackward dWeight ${tag}`);
        }
      }
    }
  });

  it('embedding forward, and a deterministic backward bit-identical to js (repeated tokens)', async () => {
    const [vocab, dim, n] = [11, 37, 50];
    const weight = rand(vocab * dim);
    const ids = Int32Array.from({ length: n }, (_, i) => (i % 3 === 0 ? 4 : rng.int(vocab)));
    const out = new Float32Array(n * dim);
    jsBackend.embeddingForward(weight, ids, out, dim);
    const outG = up(new Float32Array(n * dim));
    const idsG = up(ids);
    embeddingForward(ctx, up(weight), idsG, outG, dim);
    assert.deepEqual(await down(outG), out, 'embeddingForward');
    const dOut = rand(n * dim);
    const dW = rand(vocab * dim);
    const dWg = up(dW);
    embeddingBackward(ctx, up(dOut), idsG, up(embeddingLinks(ids)), dWg, dim);
    jsBackend.embeddingBackward(dOut, ids, dW, dim);
    assert.deepEqual(await down(dWg), dW, 'embeddingBackward');
  });

  it('embedding forward with stored ids (floats, as argmaxRows writes them): as js, the last row included', async () => {
    const [vocab, dim, n] = [13, 35, 9];
    const weight = rand(vocab * dim);
    const ids = Float32Array.from({ length: n }, (_, i) => (i === 2 ? vocab - 1 : i === 5 ? 0 : rng.int(vocab)));
    // Longer storage than n: only the first n ids are looked up.
    const stored = Float32Array.from([...ids, 3, 3]);
    const out = new Float32Array(n * dim);
    jsBackend.embeddingForwardStored(weight, stored, n, out, dim);
    const want = new Float32Array(n * dim);
    jsBackend.embeddingForward(weight, Int32Array.from(ids), want, dim);
    assert.deepEqual(out, want, 'js: stored ids as int ids');
    const outG = up(new Float32Array(n * dim));
    const idsG = up(stored);
    embeddingForward(ctx, up(weight), { buffer: idsG.buffer, offset: idsG.offset, length: n }, outG, dim, true);
    assert.deepEqual(await down(outG), want, 'embeddingForwardStored');
    assert.throws(() => jsBackend.embeddingForwardStored(weight, Float32Array.of(vocab), 1, new Float32Array(dim), dim), /id 13 outside table of 13 rows/);
  });

  it('a q8_0 or q4_0 token table looked up by stored ids: bit-identical to js\'s dequantized rows', async () => {
    const [vocab, cols, n] = [7, 96, 5];
    for (const type of ['q8_0', 'q4_0'] as const) {
      const table = quantizeMatrix(type, rand(vocab * cols), vocab, cols);
      const ids = Float32Array.of(6, 0, 3, 3, 6, 2); // one more than n: only the first n are read
      const want = new Float32Array(n * cols);
      jsBackend.embeddingQuantizedStored(table, ids, n, want);
      const bytes = new Uint8Array(Math.ceil((vocab * quantRowBytes(type, cols)) / 4) * 4);
      for (let r = 0; r < vocab; r++) bytes.set(storedRow(table, r), r * quantRowBytes(type, cols));
      const w = ctx.upload(new Uint32Array(bytes.buffer));
      const idsG = up(ids);
      const outG = up(new Float32Array(n * cols));
      embeddingQuantizedStored(ctx, w, type, vocab, cols, { buffer: idsG.buffer, offset: idsG.offset, length: n }, outG);
      assert.deepEqual(await down(outG), want, type);
      const row6 = new Float32Array(cols);
      dequantizeRow(table, 6, row6);
      assert.deepEqual(want.subarray(0, cols), row6, `${type}: js's rows are dequantizeRow's`);
    }
  });

  it('embedding backward chains: each position links to the next of its token, first positions marked; 20 000 tokens bit-identical to js', async () => {
    const FIRST = 0x80000000;
    assert.deepEqual([...embeddingLinks(Int32Array.of(5, 2, 5, 5, 2, 9))], [2 + FIRST, 4 + FIRST, 3, 6, 6, 6 + FIRST]);
    // Long chains of a few tokens (a scan of all positions per position would be 4·10⁸ comparisons).
    const [vocab, dim, n] = [7, 5, 20000];
    const ids = Int32Array.from({ length: n }, () => rng.int(vocab));
    const dOut = rand(n * dim);
    const dW = rand(vocab * dim);
    const dWg = up(dW);
    embeddingBackward(ctx, up(dOut), up(ids), up(embeddingLinks(ids)), dWg, dim);
    jsBackend.embeddingBackward(dOut, ids, dW, dim);
    assert.deepEqual(await down(dWg), dW, 'embeddingBackward');
  });

  it('dropout: the same mask as js from the same seed, bit for bit; backward', async () => {
    const n = 5000;
    const x = rand(n);
    for (const [p, seed] of [[0.1, 7], [0.5, 0xfffffff0], [0.9, 123456]] as const) {
      const out = new Float32Array(n);
      const mask = new Float32Array(n);
      jsBackend.dropoutForward(x, out, mask, p, seed);
      const [outG, maskG] = [up(new Float32Array(n)), up(new Float32Array(n))];
      const xg = up(x);
      dropoutForward(ctx, xg, outG, maskG, p, seed);
      assert.deepEqual(await down(maskG), mask, `dropout mask p ${p}`);
      assert.deepEqual(await down(outG), out, `dropout out p ${p}`);
      const dOut = rand(n);
      const dx = rand(n);
      const dxg = up(dx);
      dropoutBackward(ctx, up(dOut), maskG, dxg, true);
      jsBackend.dropoutBackward(dOut, mask, dx, true);
      assertNear(await down(dxg), dx, 1e-6, 1e-7, `dropoutBackward p ${p}`);
    }
  });

  it('fused cross-entropy forward (loss sum and count kept on the device, ignore index) and backward, plain and label-smoothed', async () => {
    // 64, 32 and 256 lanes a row (rowLanes): 4, 8 and 1 rows a workgroup.
    for (const smoothing of [0, 0.1]) for (const [rows, vocab] of [[9, 301], [11, 40], [3, 5000]] as const) {
      const what = `${rows}×${vocab}, smoothing ${smoothing}`;
      const ignore = -100;
      const logits = rand(rows * vocab, 3);
      const targets = Int32Array.from({ length: rows }, (_, r) => (r === 4 ? ignore : (r * 37) % vocab));
      const lse = new Float32Array(rows);
      const { sum, count } = jsCrossEntropyForward(logits, targets, lse, rows, vocab, ignore, smoothing);
      const [lg, tg, lseG, result] = [up(logits), up(targets), up(new Float32Array(rows)), up(new Float32Array(2))];
      crossEntropyForward(ctx, lg, tg, lseG, result, rows, vocab, ignore, smoothing);
      assertNear(await down(lseG), lse, 1e-6, 1e-6, `cross-entropy lse ${what}`);
      assertNear(await down(result), [sum, count], 1e-5, 1e-5, `cross-entropy [sum, count] ${what}`);
      for (const accumulate of [true, false]) {
        const d = rand(rows * vocab);
        const dg = up(d);
        jsCrossEntropyBackward(logits, targets, lse, d, rows, vocab, ignore, 0.125, accumulate, smoothing);
        crossEntropyBackward(ctx, lg, tg, lseG, dg, rows, vocab, ignore, 0.125, accumulate, null, smoothing);
        assertNear(await down(dg), d, 1e-5, 1e-6, `cross-entropy backward ${what}, accumulate ${accumulate}`);
      }
    }
  });

  it('AdamW step, and gradient clipping with the norm and the factor kept on the device', async () => {
    const n = 3001;
    const [param, grad, m, v] = [rand(n), rand(n), rand(n, 0.1), rand(n, 0.01).map(Math.abs)];
    const h = { lr: 1e-2, beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1, step: 3 };
    const gp = [up(param), up(grad), up(m), up(v)] as const;
    adamwStep(ctx, ...gp, h);
    jsBackend.adamwStep(param, grad, m, v, h);
    assertNear(await down(gp[0]), param, 1e-5, 1e-6, 'adamw param');
    assertNear(await down(gp[2]), m, 1e-5, 1e-7, 'adamw m');
    assertNear(await down(gp[3]), v, 1e-5, 1e-8, 'adamw v');

    const grads = [rand(70000), rand(33)];
    const stats = up(new Float32Array(3));
    const gg = grads.map((g) => up(g));
    gg.forEach((g, i) => sumSquares(ctx, g, stats, i > 0));
    const sq = grads.reduce((s, g) => s + jsSumSquares(g), 0);
    const maxNorm = Math.sqrt(sq) / 2;
    clipFactor(ctx, stats, maxNorm);
    for (const g of gg) scaleByDevice(ctx, g, span(stats.buffer, stats.offset + 2, 1));
    const norm = Math.sqrt(sq);
    assertNear(await down(stats), [sq, norm, maxNorm / (norm + 1e-6)], 1e-5, 0, 'Σg², norm, clip factor');
    for (const [i, g] of grads.entries()) {
      jsBackend.scaleInPlace(g, maxNorm / (norm + 1e-6));
      assertNear(await down(gg[i]!), g, 1e-5, 1e-7, `clipped gradient ${i}`);
    }
  });

  it('subgroups, where the adapter has them, hold aligned quads, and attention then gives a row four lanes', () => {
    if (!ctx.device.features.has('subgroups')) return;
    // SwiftShader and the GPUs attn is measured on lay invocations out in order; a device that does not simply keeps one lane.
    assert.equal(ctx.subgroupQuads, true);
    const was = setAttentionLanes(4);
    try {
      assert.equal(attentionLanes(ctx, 64), 4);
      assert.equal(attentionLanes(ctx, 16), 4);
      assert.equal(attentionLanes(ctx, 8), 1, 'a quarter of 8 is not whole vec4s');
      assert.equal(attentionLanes(ctx, 6), 1);
      setAttentionLanes(1);
      assert.equal(attentionLanes(ctx, 64), 1);
    } finally {
      setAttentionLanes(was);
    }
  });

  for (const split of [false, true]) for (const lanes of [1, 4] as const) it(`flash attention forward and backward, ${lanes} lane${lanes > 1 ? 's' : ''} a row${split ? ', split over keys and queries' : ''}: causal Tq≠Tk, key padding, grouped KV heads, packed strides, dropout, accumulate`, async () => {
    // Split: every pass that walks more than one tile (32 rows at these head sizes) is cut into chunks of one tile.
    const was = setAttentionSplit(split ? { target: 2 ** 30, minChunk: 1 } : { target: 0 });
    const wasLanes = setAttentionLanes(lanes);
    const cases: (Omit<AttentionDims, 'scale'> & { packed?: boolean; accumulate: boolean })[] = [
      { B: 2, Tq: 5, Tk: 5, nHead: 2, nKvHead: 2, headDim: 8, causal: true, accumulate: false },
      { B: 1, Tq: 3, Tk: 70, nHead: 4, nKvHead: 2, headDim: 16, causal: true, accumulate: true }, // decode-like: Tq < Tk, GQA
      { B: 2, Tq: 67, Tk: 67, nHead: 2, nKvHead: 1, headDim: 8, causal: true, packed: true, accumulate: false, dropout: { p: 0.2, seed: 99 } },
      { B: 2, Tq: 6, Tk: 9, nHead: 2, nKvHead: 2, headDim: 4, causal: false, accumulate: true, keyPadding: Uint8Array.from({ length: 18 }, (_, i) => (i === 0 || i === 10 || i === 17 ? 1 : 0)) },
      // Registers of one lane (headDim not a multiple of 4), and a GPT-2-sized head.
      { B: 1, Tq: 9, Tk: 9, nHead: 2, nKvHead: 1, headDim: 6, causal: true, accumulate: false, dropout: { p: 0.1, seed: 3 } },
      { B: 1, Tq: 70, Tk: 70, nHead: 2, nKvHead: 2, headDim: 64, causal: true, packed: true, accumulate: false },
      // Padding and GQA over several chunks, not causal.
      { B: 2, Tq: 100, Tk: 100, nHead: 4, nKvHead: 2, headDim: 16, causal: false, accumulate: true, keyPadding: Uint8Array.from({ length: 200 }, (_, i) => (i % 37 === 5 ? 1 : 0)) },
    ];
    try {
      for (const c of cases) {
        const d: AttentionDims = { ...c, scale: 1 / Math.sqrt(c.headDim) };
        const C = d.nHead * d.headDim;
        const Ckv = d.nKvHead * d.headDim;
        if (c.packed) {
          d.qStride = C + 2 * Ckv;
          d.kvStride = C + 2 * Ckv;
        }
        const qs = d.qStride ?? C;
        const ks = d.kvStride ?? Ckv;
        // Packed: q, k and v are views at column offsets 0, C, C + Ckv of one [B·T, C + 2·Ckv] buffer.
        const qkv = c.packed ? rand(d.B * d.Tq * qs) : null;
        const q = qkv ?? rand(d.B * d.Tq * qs);
        const k = qkv ? qkv.subarray(C) : rand(d.B * d.Tk * ks);
        const v = qkv ? qkv.subarray(C + Ckv) : rand(d.B * d.Tk * ks);
        const out = new Float32Array(d.B * d.Tq * C);
        const saved = jsBackend.attentionForward(q, k, v, out, d);
        const gd = { ...d, keyPadding: d.keyPadding ? up(Uint32Array.from(d.keyPadding)) : null };
        const qkvG = qkv ? up(qkv) : null;
        const qg = qkvG ?? up(q);
        const kg = qkvG ? span(qkvG.buffer, qkvG.offset + C, k.length) : up(k);
        const vg = qkvG ? span(qkvG.buffer, qkvG.offset + C + Ckv, v.length) : up(v);
        const outG = up(new Float32Array(out.length));
        const lse = up(new Float32Array(d.B * d.nHead * d.Tq));
        const before = ctx.stats.dispatches;
        attentionForward(ctx, qg, kg, vg, outG, lse, gd);
        const tag = JSON.stringify({ ...c, keyPadding: !!c.keyPadding, split, lanes: attentionLanes(ctx, c.headDim) });
        // A split forward is two dispatches: the chunks, then their combination.
        assert.equal(ctx.stats.dispatches - before, split && d.Tk > 32 ? 2 : 1, `forward dispatches ${tag}`);
        assertNear(await down(outG), out, 1e-4, 1e-5, `attention forward ${tag}`);

        const dOut = rand(out.length);
        const dqkv = c.packed ? rand(qkv!.length) : null;
        const dq = dqkv ?? rand(q.length);
        const dk = dqkv ? dqkv.subarray(C) : rand(k.length);
        const dv = dqkv ? dqkv.subarray(C + Ckv) : rand(v.length);
        const dqkvG = dqkv ? up(dqkv) : null;
        const dqg = dqkvG ?? up(dq);
        const dkg = dqkvG ? span(dqkvG.buffer, dqkvG.offset + C, dk.length) : up(dk);
        const dvg = dqkvG ? span(dqkvG.buffer, dqkvG.offset + C + Ckv, dv.length) : up(dv);
        jsBackend.attentionBackward(saved, q, k, v, out, dOut, dq, dk, dv, d, c.accumulate);
        attentionBackward(ctx, lse, qg, kg, vg, outG, up(dOut), dqg, dkg, dvg, gd, c.accumulate);
        if (dqkvG) assertNear(await down(dqkvG), dqkv!, 1e-3, 1e-4, `attention backward dqkv ${tag}`);
        else {
          assertNear(await down(dqg), dq, 1e-3, 1e-4, `attention backward dq ${tag}`);
          assertNear(await down(dkg), dk, 1e-3, 1e-4, `attention backward dk ${tag}`);
          assertNear(await down(dvg), dv, 1e-3, 1e-4, `attention backward dv ${tag}`);
        }
      }
    } finally {
      setAttentionSplit(was);
      setAttentionLanes(wasLanes);
    }
  });

  it('attention passes split only where they have too few invocations for the walk', () => {
    const was = setAttentionSplit({ target: 1 << 17, minChunk: 64 });
    try {
      assert.deepEqual(attentionSplit(16 * 6 * 256, 256, 32), { splits: 4, chunk: 64 }); // config M: 24 576 invocations walk 256 keys
      assert.deepEqual(attentionSplit(12 * 64, 64, 32), { splits: 1, chunk: 64 }); // config S: too short a walk
      assert.deepEqual(attentionSplit(4 * 12 * 1024, 1024, 32), { splits: 3, chunk: 352 }); // 124M at its full context
      assert.deepEqual(attentionSplit(1 << 17, 4096, 32), { splits: 1, chunk: 4096 }); // enough invocations already
      assert.deepEqual(attentionSplit(64, 100_000, 32), { splits: MAX_ATTENTION_SPLITS, chunk: 6272 });
      setAttentionSplit({ target: 0 });
      assert.deepEqual(attentionSplit(64, 4096, 32), { splits: 1, chunk: 4096 });
    } finally {
      setAttentionSplit(was);
    }
  });

  it('cached decode attention (left padding, GQA) and the int8 matrix product', async () => {
    const d = { B: 2, Tq: 2, past: 45, cap: 50, nHead: 4, nKvHead: 2, headDim: 16, scale: 0.25 };
    const q = rand(d.B * d.Tq * d.nHead * d.headDim);
    const kc = rand(d.B * d.cap * d.nKvHead * d.headDim);
    const vc = rand(kc.length);
    const start = Int32Array.of(0, 3);
    const out = new Float32Array(q.length);
    jsBackend.attentionCached(q, kc, vc, out, start, d);
    const outG = up(new Float32Array(q.length));
    attentionCached(ctx, up(q), up(kc), up(vc), outG, up(start), d);
    assertNear(await down(outG), out, 1e-4, 1e-5, 'attentionCached');
    // With the new keys and values given (fresh): stored by the kernel at slots past, past + 1 (at an offset
    // in their buffers), and attended to from there; every other slot of the caches untouched.
    const W = d.nKvHead * d.headDim;
    const [kNew, vNew] = [rand(d.B * d.Tq * W), rand(d.B * d.Tq * W)];
    const [kcWant, vcWant] = [kc.slice(), vc.slice()];
    const outFresh = new Float32Array(q.length);
    jsBackend.attentionCached(q, kcWant, vcWant, outFresh, start, d, { k: kNew, v: vNew });
    for (let b = 0; b < d.B; b++) assert.deepEqual(kcWant.subarray((b * d.cap + d.past) * W, (b * d.cap + d.past + d.Tq) * W), kNew.subarray(b * d.Tq * W, (b + 1) * d.Tq * W), 'js stores fresh keys');
    const [kcG, vcG, outFreshG] = [up(kc), up(vc), up(new Float32Array(q.length))];
    const at3 = (x: Float32Array) => {
      const g = up(Float32Array.from([9, 9, 9, ...x]));
      return span(g.buffer, g.offset + 3, x.length);
    };
    attentionCached(ctx, up(q), kcG, vcG, outFreshG, up(start), d, { k: at3(kNew), v: at3(vNew) });
    assertNear(await down(outFreshG), outFresh, 1e-4, 1e-5, 'attentionCached with fresh keys and values');
    assert.deepEqual(await down(kcG), kcWant, 'key cache');
    assert.deepEqual(await down(vcG), vcWant, 'value cache');

    // 32 lanes an output (8 outputs a workgroup, the second part-filled) and 128 (rowLanes).
    for (const [rows, K, N, withBias] of [[2, 37, 5, true], [2, 37, 5, false], [3, 777, 5, true]] as const) {
      const x = rand(rows * K);
      const w = Int8Array.from({ length: N * K }, () => rng.int(255) - 127);
      const scale = rand(N, 0.01);
      const bias = rand(N);
      const want = new Float32Array(rows * N);
      const addend = withBias ? rand(rows * N) : null; // with the bias, an epilogue too: GELU, then an addend
      jsBackend.linearInt8(x, rows, K, w, scale, withBias ? bias : null, want, N, addend && { activation: 'gelu', addend });
      // The int8 bytes as stored, after 8 bytes of something else, in whole u32 words.
      const bytes = new Int8Array(Math.ceil((w.length + 8) / 4) * 4);
      bytes.set(w, 8);
      const outI = up(new Float32Array(rows * N));
      linearInt8(ctx, up(x), rows, K, ctx.upload(new Uint32Array(bytes.buffer)), 8, up(scale), withBias ? up(bias) : null, outI, N, addend && { activation: 'gelu', addend: up(addend) });
      assertNear(await down(outI), want, 1e-5, 1e-5, `linearInt8 ${rows}×${K}×${N} bias ${withBias}`);
    }
  });
});
