import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { GemmArgs } from '../src/backend/backend.js';
import { jsBackend } from '../src/backend/js/index.js';
import { envCount, GpuContext, span } from '../src/backend/webgpu/device.js';
import { binary, reduceSumTo } from '../src/backend/webgpu/kernels/elementwise.js';
import { embeddingForward } from '../src/backend/webgpu/kernels/embedding.js';
import { CONFIGS, chooseGemmConfig, fits, gemmWith, parseGemmChoice, setGemmChoice } from '../src/backend/webgpu/kernels/gemm.js';
import { setSplitK } from '../src/backend/webgpu/kernels/gemm_split_k.js';
import { sweepWebgpuGemm } from '../src/bench/webgpu_sweep.js';
import type { Row } from '../src/bench/workloads.js';
import { UserError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';

/*
 * The speed work of issue #17 against the js oracle on SwiftShader
 * (VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json): every GEMM
 * config of the table on odd, batched and transposed shapes, the per-shape
 * choice and its override, and the host-side savings of GpuContext (one pass
 * for consecutive dispatches, cached bind groups, one uniform upload per
 * submit). Skips without an adapter unless ATTN_REQUIRE_WEBGPU=1.
 */

async function open(): Promise<GpuContext | null> {
  try {
    return await GpuContext.create();
  } catch (e) {
    if (!(e instanceof UserError)) throw e;
    if (process.env.ATTN_REQUIRE_WEBGPU === '1') throw new Error(`ATTN_REQUIRE_WEBGPU=1 but ${e.message}`);
    return null;
  }
}

const maybe = await open();
const ctx = maybe!;
after(() => maybe?.destroy());
const rng = new Rng(23);
const rand = (n: number) => Float32Array.from({ length: n }, () => rng.normal());

function near(got: Float32Array, want: Float32Array, tol: number, what: string): void {
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= tol * (1 + Math.abs(want[i]!)), `${what}: element ${i} is ${got[i]} vs ${want[i]}`);
}

/** One product with `config` against js: batch 2 (B shared when strideB is 0), alpha, bias, accumulate. */
async function checkProduct(config: (typeof CONFIGS)[number], M: number, N: number, K: number, transA: boolean, transB: boolean): Promise<void> {
  const batch = 2;
  const [lda, ldb, ldc] = [transA ? M : K, transB ? K : N, N];
  const strideA = M * K;
  const strideC = M * N;
  const a = rand(strideA * batch);
  const b = rand(K * N);
  const c0 = rand(strideC * batch);
  const bias = rand(N);
  const args: Omit<GemmArgs, 'a' | 'b' | 'c' | 'bias' | 'epilogue'> = { transA, transB, M, N, K, aOffset: 0, lda, bOffset: 0, ldb, cOffset: 0, ldc, alpha: 0.5, accumulate: true, batch, strideA, strideB: 0, strideC };
  const want = c0.slice();
  jsBackend.gemm({ ...args, a, b, c: want, bias });
  const [ga, gb, gc, gbias] = [ctx.upload(a), ctx.upload(b), ctx.upload(c0), ctx.upload(bias)];
  gemmWith(ctx, config, { ...args, a: ga, b: gb, c: gc, bias: gbias });
  near(await ctx.read(gc, 0, c0.length), want, 1e-5 * Math.sqrt(K), `${config.name} ${M}×${N}×${K} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`);
  for (const x of [ga, gb, gc, gbias]) ctx.release(x);
}

describe('webgpu settings', () => {
  it('ATTN_WEBGPU_* counts: unset or empty gives the default, a whole number is taken, anything else is a UserError naming the variable', () => {
    const name = 'ATTN_WEBGPU_TEST_COUNT';
    try {
      delete process.env[name];
      assert.equal(envCount(name, 32, 'dispatches'), 32);
      process.env[name] = '';
      assert.equal(envCount(name, 32, 'dispatches'), 32);
      process.env[name] = '0';
      assert.equal(envCount(name, 32, 'dispatches'), 0);
      process.env[name] = '1024';
      assert.equal(envCount(name, 32, 'dispatches'), 1024);
      for (const bad of ['-1', '2.5', 'lots']) {
        process.env[name] = bad;
        assert.throws(() => envCount(name, 32, 'dispatches'), (e: Error) => e instanceof UserError && e.message === `${name}: expected a whole number of dispatches (0 = off), got '${bad}'`);
      }
    } finally {
      delete process.env[name];
    }
  });
});

describe('webgpu speed work', { skip: maybe ? false : 'no WebGPU adapter' }, () => {
  it('every GEMM config agrees with js: odd shapes (scalar loads) and aligned ones (vec4 loads), all four transposes across the table', async () => {
    const forms: [boolean, boolean][] = [[false, true], [true, false], [true, true]];
    let ran = 0;
    for (const [i, config] of CONFIGS.entries()) {
      if (!fits(ctx, config)) continue;
      ran++;
      const [transA, transB] = forms[i % forms.length]!;
      await checkProduct(config, 65, 129, 33, transA, transB); // odd everywhere: scalar loads, edge tiles, a K tail
      await checkProduct(config, 36, 132, 40, false, false); // multiples of 4: 16-byte loads, still edge tiles
    }
    assert.ok(ran >= 5, `only ${ran} configs fit this device`);
    await checkProduct(CONFIGS.at(-1)!, 1, 7, 3, false, false);
  });

  it('the per-shape choice, and ATTN_WEBGPU_GEMM overriding it', () => {
    assert.equal(chooseGemmConfig(ctx, 4096, 4096, 1).name, '128x128_t8x8_k8');
    assert.equal(chooseGemmConfig(ctx, 512, 512, 1).name, '64x64_t4x4_k16');
    assert.equal(chooseGemmConfig(ctx, 7, 33, 1).name, '32x32_t4x4_k16');
    const one = parseGemmChoice('64x64_t8x8_k8');
    assert.deepEqual([one.large, one.medium, one.small], ['64x64_t8x8_k8', '64x64_t8x8_k8', '64x64_t8x8_k8']);
    const three = parseGemmChoice('128x64_t8x4_k16,64x64_t8x8_k8,32x32_t4x4_k16,10,5');
    assert.deepEqual([three.minLargeTiles, three.minMediumTiles], [10, 5]);
    setGemmChoice(three);
    try {
      assert.equal(chooseGemmConfig(ctx, 512, 256, 1).name, '128x64_t8x4_k16'); // 4×4 = 16 blocks ≥ 10
    } finally {
      setGemmChoice(null);
    }
    assert.throws(() => setGemmChoice(parseGemmChoice('nope')), /unknown webgpu GEMM config 'nope'/);
    assert.throws(() => parseGemmChoice('a,b'), /expected NAME or LARGE,MEDIUM,SMALL/);
  });

  it('the GEMM sweep: a row per config and shape, the best of each shape, the choice, and split-K beside the unsplit product where the backend splits', async () => {
    const rows: Row[] = [];
    const was = setSplitK({ target: 512, minFlop: 0 });
    try {
      const shapes = [
        { name: 'wide', M: 64, N: 32, K: 8, size: 'large' as const },
        { name: 'dW', M: 32, N: 36, K: 600, transA: true, size: 'medium' as const },
        { name: 'tiny', M: 8, N: 8, K: 8, size: 'small' as const },
      ];
      await sweepWebgpuGemm({ ctx, shapes, configs: [CONFIGS[CONFIGS.length - 1]!], runs: 1, minSeconds: 0 }, (r) => rows.push(r));
    } finally {
      setSplitK(was);
    }
    const of = (w: string) => rows.filter((r) => r.workload === w);
    assert.equal(of('gemm-sweep').length, 3);
    assert.ok(of('gemm-sweep').every((r) => (r.gflops as number) > 0), JSON.stringify(rows));
    assert.deepEqual(of('gemm-sweep-best').map((r) => r.shape), ['wide', 'dW', 'tiny']);
    const split = of('gemm-sweep-splitk');
    assert.equal(split.length, 1, 'only the long-K shape with two output blocks is split');
    assert.equal(split[0]!.shape, 'dW');
    assert.equal(split[0]!.splits, 2);
    assert.ok((split[0]!.gflops as number) > 0 && (split[0]!.gflops_unsplit as number) > 0);
    assert.equal(of('gemm-sweep-choice').length, 1);
  });

  it('consecutive dispatches share one pass, bind groups are reused, parameters go up in one write per submit; column sums agree with js', async () => {
    ctx.submitEvery = 0; // this test counts what one explicit submit costs
    const rows = 37;
    const cols = 45;
    const x = rand(rows * cols);
    const gx = span(ctx.upload(x));
    const out = span(ctx.zeros(cols));
    const tmp = span(ctx.buffer(rows * cols * 4), 0, rows * cols);
    ctx.flush();
    const run = () => {
      binary(ctx, 'mul', gx, [rows, cols], gx, [rows, cols], tmp, [rows, cols]);
      reduceSumTo(ctx, tmp, [rows, cols], out, [1, cols]); // a bias gradient: the column-sum kernel
      reduceSumTo(ctx, gx, [rows, cols], out, [1, cols]);
    };
    run();
    ctx.flush();
    const before = { ...ctx.stats };
    run();
    ctx.flush();
    const d = (k: keyof typeof before) => ctx.stats[k] - before[k];
    assert.equal(d('dispatches'), 3);
    assert.equal(d('passes'), 1);
    assert.equal(d('bindGroupsCreated'), 0);
    assert.equal(d('bindGroupsReused'), 3);
    assert.equal(d('writeBuffers'), 1);
    assert.equal(d('submits'), 1);
    assert.equal(d('buffersCreated'), 0);
    const want = new Float32Array(cols);
    for (let r = 0; r < rows; r++) for (let j = 0; j < cols; j++) want[j] = want[j]! + 2 * (x[r * cols + j]! ** 2 + x[r * cols + j]!);
    near(await ctx.read(out.buffer, 0, cols), want, 1e-5, 'column sums');
    ctx.submitEvery = 32;
  });

  it('periodic submits: every submitEvery dispatches the recording goes to the GPU; a chain across them, with buffers released and reused mid-chain, agrees with js', async () => {
    const n = 301;
    const x = rand(n);
    const gx = span(ctx.upload(x));
    ctx.flush();
    ctx.submitEvery = 2;
    const before = { ...ctx.stats };
    const t1 = span(ctx.buffer(n * 4), 0, n);
    binary(ctx, 'mul', gx, [n], gx, [n], t1, [n]); // x²
    const t2 = span(ctx.buffer(n * 4), 0, n);
    binary(ctx, 'add', t1, [n], gx, [n], t2, [n]); // x² + x
    ctx.release(t1.buffer);
    const t3 = span(ctx.buffer(n * 4), 0, n);
    binary(ctx, 'mul', t2, [n], t2, [n], t3, [n]); // (x² + x)²: the third dispatch, so a submit first, which frees t1's buffer
    const t4 = span(ctx.buffer(n * 4), 0, n); // the pool may hand t1's buffer out again: the queue orders the reuse after the reads
    binary(ctx, 'add', t3, [n], t2, [n], t4, [n]);
    assert.equal(ctx.stats.submits - before.submits, 1, 'one submit while recording four dispatches');
    const want = x.map((v) => (v * v + v) ** 2 + v * v + v);
    near(await ctx.read(t4.buffer, 0, n), want, 1e-5, 'chain across submits');
    ctx.submitEvery = 32;
    for (const t of [gx, t2, t3, t4]) ctx.release(t.buffer);
  });

  it('the pool hands buffers out in the same order every step whatever order they were released in, so bind groups recur', () => {
    const n = 96;
    const gx = span(ctx.upload(rand(n)));
    const step = (releaseReversed: boolean) => {
      const [a, b, c] = [ctx.buffer(n * 4), ctx.buffer(n * 4), ctx.buffer(n * 4)];
      binary(ctx, 'add', gx, [n], gx, [n], span(a, 0, n), [n]);
      binary(ctx, 'mul', span(a, 0, n), [n], gx, [n], span(b, 0, n), [n]);
      binary(ctx, 'sub', span(b, 0, n), [n], span(a, 0, n), [n], span(c, 0, n), [n]);
      for (const x of releaseReversed ? [c, b, a] : [a, b, c]) ctx.release(x);
      ctx.flush();
      return [a, b, c];
    };
    step(false);
    const first = step(true);
    const before = { ...ctx.stats };
    const second = step(false);
    assert.deepEqual(second, first, 'the same buffers, in the same roles');
    assert.equal(ctx.stats.bindGroupsCreated - before.bindGroupsCreated, 0);
    assert.equal(ctx.stats.bindGroupsReused - before.bindGroupsReused, 3);
    ctx.release(gx.buffer);
  });

  it('host operands go up through the staging ring: one write per submit, the same bind group every step, intact across a flush inside a call', async () => {
    ctx.submitEvery = 0; // this test counts the writes of its own explicit submits
    const vocab = 11;
    const dim = 6;
    const w = rand(vocab * dim);
    const gw = span(ctx.upload(w));
    const n = 5;
    const out = [0, 1, 2].map(() => span(ctx.buffer(n * dim * 4), 0, n * dim));
    const idsOf = (step: number, call: number) => Int32Array.from({ length: n }, (_, i) => (i * 3 + call * 5 + step) % vocab);
    const step = (k: number) => {
      ctx.withStaged(idsOf(k, 0), (ids) => embeddingForward(ctx, gw, ids, out[0]!, dim));
      // A submit between staging and the dispatch (the uniform ring filled, a write): the span must keep its values.
      ctx.withStaged(idsOf(k, 1), (ids) => {
        ctx.flush();
        ctx.withStaged(idsOf(k, 2), (other) => embeddingForward(ctx, gw, other, out[2]!, dim));
        embeddingForward(ctx, gw, ids, out[1]!, dim);
      });
      ctx.flush();
    };
    const check = async (k: number) => {
      for (let call = 0; call < 3; call++) {
        const ids = idsOf(k, call);
        const want = new Float32Array(n * dim);
        ids.forEach((id, i) => want.set(w.subarray(id * dim, (id + 1) * dim), i * dim));
        near(await ctx.read(out[call]!.buffer, 0, n * dim), want, 0, `step ${k}, call ${call}`);
      }
    };
    step(0);
    await check(0);
    const before = { ...ctx.stats };
    step(1);
    const d = (key: keyof typeof before) => ctx.stats[key] - before[key];
    assert.equal(d('bindGroupsCreated'), 0, 'the ring is the same buffer every step');
    assert.equal(d('buffersCreated'), 0);
    assert.equal(d('writeBuffers'), 4, 'per submit: the uniform ring and the staging ring');
    await check(1);
    ctx.submitEvery = 32;
    ctx.release(gw.buffer);
    for (const o of out) ctx.release(o.buffer);
  });
});
