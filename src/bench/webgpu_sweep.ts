import { GpuContext } from '../backend/webgpu/device.js';
import { CONFIGS, type GemmConfig, fits, type GpuGemmArgs, gemmWith, planGemm } from '../backend/webgpu/kernels/gemm.js';
import { Rng } from '../util/rng.js';
import { median } from './configs.js';
import type { Row } from './workloads.js';

/**
 * `attn bench --backend webgpu --workloads gemm-sweep`: every GEMM config of
 * kernels/gemm.ts on every shape below, GFLOP/s each (median of timed runs,
 * each a batch of products long enough to hide submit overhead). The square
 * sizes are the goal; the others are what training configs M and G
 * multiply (tokens × width × width, the MLP, the vocabulary head, and the
 * transposed forms of the backward). The last row per shape names the best
 * config, and the summary row gives the ATTN_WEBGPU_GEMM value that selects
 * the best large, medium and small configs on this GPU. Where the backend
 * would split a shape's K (kernels/gemm_split_k.ts: the weight gradients), a
 * `gemm-sweep-splitk` row has the chosen config with and without the split.
 */

interface Shape {
  name: string;
  M: number;
  N: number;
  K: number;
  transA?: boolean;
  transB?: boolean;
  /** Which entry of the choice this shape informs. */
  size: 'large' | 'medium' | 'small';
}

export const SWEEP_SHAPES: readonly Shape[] = [
  { name: 'n1024', M: 1024, N: 1024, K: 1024, size: 'large' },
  { name: 'n2048', M: 2048, N: 2048, K: 2048, size: 'large' },
  { name: 'n4096', M: 4096, N: 4096, K: 4096, size: 'large' },
  // config M: 16×256 = 4096 tokens, width 384, MLP 1536
  { name: 'M.qkv', M: 4096, N: 1152, K: 384, transB: true, size: 'large' },
  { name: 'M.mlp_down.dW', M: 384, N: 1536, K: 4096, transA: true, size: 'medium' },
  { name: 'M.proj', M: 4096, N: 384, K: 384, transB: true, size: 'medium' },
  { name: 'M.proj.dW', M: 384, N: 384, K: 4096, transA: true, size: 'small' },
  // config G: 4×256 = 1024 tokens, width 768, vocabulary 50 257
  { name: 'G.mlp_up', M: 1024, N: 3072, K: 768, transB: true, size: 'large' },
  { name: 'G.head', M: 1024, N: 50257, K: 768, transB: true, size: 'large' },
  { name: 'G.head.dX', M: 1024, N: 768, K: 50257, size: 'medium' },
  { name: 'G.proj.dW', M: 768, N: 768, K: 1024, transA: true, size: 'medium' },
  { name: 'small', M: 64, N: 384, K: 384, transB: true, size: 'small' },
];

/**
 * GFLOP/s of `record` (which records one product of `flop` operations): the
 * median of `runs` timed runs, each a batch of products lasting about
 * `minSeconds`, submitted together and waited for, after a warm-up (the
 * first call compiles).
 */
export async function measureGflops(ctx: GpuContext, record: () => void, flop: number, runs: number, minSeconds: number): Promise<number> {
  const timeRun = async (count: number): Promise<number> => {
    const t0 = performance.now();
    for (let i = 0; i < count; i++) record();
    await ctx.sync();
    return (performance.now() - t0) / 1000;
  };
  await timeRun(1); // compile and warm up
  const one = await timeRun(1);
  const count = Math.max(1, Math.min(1000, Math.ceil(minSeconds / Math.max(one, 1e-6))));
  const rates: number[] = [];
  for (let r = 0; r < runs; r++) rates.push((flop * count) / (await timeRun(count)) / 1e9);
  return median(rates);
}

export async function sweepWebgpuGemm(o: { ctx?: GpuContext; shapes?: readonly Shape[]; configs?: readonly GemmConfig[]; runs?: number; minSeconds?: number }, emit: (r: Row) => void): Promise<void> {
  const ctx = o.ctx ?? (await GpuContext.create());
  const best: Record<Shape['size'], Map<string, number[]>> = { large: new Map(), medium: new Map(), small: new Map() };
  try {
    for (const s of o.shapes ?? SWEEP_SHAPES) {
      const rng = new Rng(s.M + s.N + s.K);
      const fill = (n: number) => Float32Array.from({ length: n }, () => rng.normal());
      const [a, b, c] = [ctx.upload(fill(s.M * s.K)), ctx.upload(fill(s.K * s.N)), ctx.buffer(s.M * s.N * 4)];
      const transA = s.transA ?? false;
      const transB = s.transB ?? false;
      const args: GpuGemmArgs = {
        transA, transB, M: s.M, N: s.N, K: s.K, a, aOffset: 0, lda: transA ? s.M : s.K, b, bOffset: 0, ldb: transB ? s.K : s.N,
        c, cOffset: 0, ldc: s.N, alpha: 1, accumulate: false, batch: 1, strideA: 0, strideB: 0, strideC: 0,
      };
      let top: [string, number] = ['', 0];
      for (const cfg of o.configs ?? CONFIGS) {
        if (!fits(ctx, cfg)) {
          emit({ workload: 'gemm-sweep', backend: 'webgpu', shape: s.name, config: cfg.name, error: 'over this device\'s workgroup limits' });
          continue;
        }
        try {
          const gflops = await measureGflops(ctx, () => gemmWith(ctx, cfg, args), 2 * s.M * s.N * s.K, o.runs ?? 3, o.minSeconds ?? 0.1);
          emit({ workload: 'gemm-sweep', backend: 'webgpu', shape: s.name, M: s.M, N: s.N, K: s.K, trans: `${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`, config: cfg.name, gflops: Number(gflops.toPrecision(4)) });
          if (gflops > top[1]) top = [cfg.name, gflops];
          const list = best[s.size].get(cfg.name) ?? [];
          list.push(gflops);
          best[s.size].set(cfg.name, list);
        } catch (e) {
          emit({ workload: 'gemm-sweep', backend: 'webgpu', shape: s.name, config: cfg.name, error: (e as Error).message.split('\n')[0] ?? 'error' });
        }
      }
      emit({ workload: 'gemm-sweep-best', backend: 'webgpu', shape: s.name, config: top[0], gflops: Number(top[1].toPrecision(4)) });
      const plan = planGemm(ctx, s.M, s.N, s.K, 1);
      if (plan.split.splits > 1) {
        try {
          const flop = 2 * s.M * s.N * s.K;
          const split = await measureGflops(ctx, () => gemmWith(ctx, plan.config, args, plan.split), flop, o.runs ?? 3, o.minSeconds ?? 0.1);
          const whole = await measureGflops(ctx, () => gemmWith(ctx, plan.config, args), flop, o.runs ?? 3, o.minSeconds ?? 0.1);
          emit({ workload: 'gemm-sweep-splitk', backend: 'webgpu', shape: s.name, config: plan.config.name, splits: plan.split.splits, gflops: Number(split.toPrecision(4)), gflops_unsplit: Number(whole.toPrecision(4)) });
        } catch (e) {
          emit({ workload: 'gemm-sweep-splitk', backend: 'webgpu', shape: s.name, error: (e as Error).message.split('\n')[0] ?? 'error' });
        }
      }
      for (const buf of [a, b, c]) ctx.release(buf);
      ctx.flush();
    }
    // Per size class, the config with the best geometric mean over its shapes (only configs that ran on all of them).
    const pick = (size: Shape['size']): string => {
      const shapes = (o.shapes ?? SWEEP_SHAPES).filter((s) => s.size === size).length;
      let top: [string, number] = ['', -1];
      for (const [name, rates] of best[size]) {
        if (rates.length < shapes) continue;
        const g = Math.exp(rates.reduce((x, r) => x + Math.log(Math.max(r, 1e-9)), 0) / rates.length);
        if (g > top[1]) top = [name, g];
      }
      return top[0];
    };
    const [large, medium, small] = [pick('large'), pick('medium'), pick('small')];
    if (large && medium && small) emit({ workload: 'gemm-sweep-choice', backend: 'webgpu', device: ctx.adapterName, ATTN_WEBGPU_GEMM: `${large},${medium},${small}` });
  } finally {
    if (!o.ctx) ctx.destroy();
  }
}
