import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { GemmArgs } from '../src/backend/backend.js';
import { jsBackend } from '../src/backend/js/index.js';
import { GpuContext } from '../src/backend/webgpu/device.js';
import { gemm } from '../src/backend/webgpu/kernels/gemm.js';
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
          // The second and fourth combinations use padded rows and offsets that break 16-byte alignment.
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
          const args: Omit<GemmArgs, 'a' | 'b' | 'c' | 'bias'> = {
            transA, transB, M, N, K, aOffset, lda, bOffset, ldb, cOffset, ldc, alpha: 0.75, accumulate, batch, strideA, strideB, strideC,
          };
          const want = c0.slice();
          jsBackend.gemm({ ...args, a, b, c: want, bias: transA ? bias.subarray(2) : null });
          const ga = ctx.upload(a);
          const gb = ctx.upload(b);
          const gc = ctx.upload(c0);
          const gbias = ctx.upload(bias);
          gemm(ctx, { ...args, a: ga, b: gb, c: gc, bias: transA ? gbias : null, biasOffset: 2 });
          const got = await ctx.read(gc, 0, c0.length);
          assertNear(got, want, 1e-5 * Math.sqrt(K), 1e-5 * Math.sqrt(K), `gemm ${M}×${N}×${K} ${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`);
          for (const buf of [ga, gb, gc, gbias]) ctx.release(buf);
        }
      }
    }
  });
});
