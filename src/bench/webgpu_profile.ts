import type { GpuContext, GpuStats } from '../backend/webgpu/device.js';
import { trainStepAsync } from '../train/step.js';
import type { Row } from './workloads.js';
import { trainBenchSetup } from './workloads.js';

/**
 * What one training step costs, on the host and on the GPU, for `attn bench
 * --backend webgpu --workloads profile` (the backend must already be webgpu):
 *
 * - the host's counts for one warm step (dispatches, compute passes, bind
 *   groups made and reused, buffers created, queue writes, submits, reads)
 *   and the milliseconds of JavaScript spent recording dispatches — exact on
 *   any adapter, SwiftShader included;
 * - with `timestamp-query`, the GPU milliseconds of each kernel over that
 *   step, one row per kernel name, largest first (each dispatch then gets its
 *   own pass, so the total is a little above an unprofiled step).
 */

const diff = (a: GpuStats, b: GpuStats): GpuStats => Object.fromEntries(Object.entries(b).map(([k, v]) => [k, v - a[k as keyof GpuStats]])) as unknown as GpuStats;

/** The counts and encode time of one warm step of config M, G (or S) and, where possible, its per-kernel GPU times. */
export async function profileTrainStep(ctx: GpuContext, config: string, emit: (r: Row) => void, warmup = 2): Promise<GpuStats> {
  const { opt, objective, batch, n } = trainBenchSetup(config);
  const step = () => trainStepAsync(opt, objective, [batch], { lr: 1e-3, gradClip: 1 });
  for (let i = 0; i < warmup; i++) await step();
  await ctx.sync();
  const before = { ...ctx.stats };
  const t0 = performance.now();
  await step();
  const wall = performance.now() - t0;
  const counts = diff(before, ctx.stats);
  emit({ workload: 'profile', backend: 'webgpu', config, tokens: n, step_ms: Number(wall.toFixed(2)), ...counts, encodeMs: Number(counts.encodeMs.toFixed(2)) });
  if (!ctx.canTimestamp) {
    emit({ workload: 'profile-kernels', backend: 'webgpu', config, error: 'no timestamp-query on this adapter: host counts only' });
    return counts;
  }
  ctx.startProfile();
  await step();
  const times = await ctx.stopProfile();
  const total = [...times.values()].reduce((s, t) => s + t.ms, 0);
  for (const [kernel, t] of [...times].sort((x, y) => y[1].ms - x[1].ms)) {
    emit({ workload: 'profile-kernel', backend: 'webgpu', config, kernel, gpu_ms: Number(t.ms.toFixed(3)), dispatches: t.count, share: Number((t.ms / total).toFixed(3)) });
  }
  emit({ workload: 'profile-kernels', backend: 'webgpu', config, gpu_ms: Number(total.toFixed(2)) });
  return counts;
}
