import { jsBackend } from '../backend/js/index.js';
import { GpuContext } from '../backend/webgpu/device.js';
import { gemm } from '../backend/webgpu/kernels/gemm.js';
import { Rng } from '../util/rng.js';
import { measureGflops } from './webgpu_sweep.js';

/**
 * GEMM throughput of the WebGPU kernel: C = A·B for square n×n matrices,
 * GFLOP/s = 2n³ / seconds. Each timing submits a run of products and waits
 * for the GPU to finish (ctx.sync), so launch overhead is amortised and the
 * figure is the GPU's, not the driver's; the median of several runs is
 * reported, with the adapter's name. Before timing, the kernel is checked
 * against the js backend at a small odd size: a fast wrong kernel reports
 * nothing.
 */

export interface WebgpuGemmRecord {
  workload: 'gemm';
  backend: 'webgpu';
  n: number;
  gflops: number;
  device: string;
  runs: number;
}

export interface WebgpuGemmOptions {
  sizes?: number[];
  /** Timed runs per size (median reported). */
  runs?: number;
  /** Seconds each run should last at least (more products per run when one is faster). */
  minSeconds?: number;
  /** An open context (the backend's); one is created and destroyed otherwise. */
  ctx?: GpuContext;
}

/** Largest |gpu − js| relative to sqrt(K) at a small, tile-unaligned size; throws when the kernel is wrong. */
async function checkAgainstJs(ctx: GpuContext): Promise<void> {
  const [M, N, K] = [70, 90, 130];
  const rng = new Rng(5);
  const a = Float32Array.from({ length: M * K }, () => rng.normal());
  const b = Float32Array.from({ length: K * N }, () => rng.normal());
  const want = new Float32Array(M * N);
  const base = { transA: false, transB: false, M, N, K, aOffset: 0, lda: K, bOffset: 0, ldb: N, cOffset: 0, ldc: N, alpha: 1, accumulate: false, batch: 1, strideA: 0, strideB: 0, strideC: 0 };
  jsBackend.gemm({ ...base, a, b, c: want });
  const [ga, gb, gc] = [ctx.upload(a), ctx.upload(b), ctx.buffer(M * N * 4)];
  gemm(ctx, { ...base, a: ga, b: gb, c: gc });
  const got = await ctx.read(gc, 0, M * N);
  for (const buf of [ga, gb, gc]) ctx.release(buf);
  let worst = 0;
  for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
  if (!(worst <= 1e-4 * Math.sqrt(K))) throw new Error(`webgpu GEMM disagrees with js: max |error| ${worst} at ${M}×${N}×${K}`);
}

export async function benchWebgpuGemm(o: WebgpuGemmOptions = {}): Promise<WebgpuGemmRecord[]> {
  const ctx = o.ctx ?? (await GpuContext.create());
  try {
    await checkAgainstJs(ctx);
    const records: WebgpuGemmRecord[] = [];
    const runs = o.runs ?? 5;
    const minSeconds = o.minSeconds ?? 0.2;
    for (const n of o.sizes ?? [1024, 2048, 4096]) {
      const rng = new Rng(n);
      const fill = () => Float32Array.from({ length: n * n }, () => rng.normal());
      const [a, b, c] = [ctx.upload(fill()), ctx.upload(fill()), ctx.buffer(n * n * 4)];
      const args = { transA: false, transB: false, M: n, N: n, K: n, a, aOffset: 0, lda: n, b, bOffset: 0, ldb: n, c, cOffset: 0, ldc: n, alpha: 1, accumulate: false, batch: 1, strideA: 0, strideB: 0, strideC: 0 };
      const gflops = await measureGflops(ctx, () => gemm(ctx, args), 2 * n ** 3, runs, minSeconds);
      records.push({ workload: 'gemm', backend: 'webgpu', n, gflops: Number(gflops.toPrecision(4)), device: ctx.adapterName, runs });
      for (const buf of [a, b, c]) ctx.release(buf);
      ctx.flush();
    }
    return records;
  } finally {
    if (!o.ctx) ctx.destroy();
  }
}
