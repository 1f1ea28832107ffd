import type { GpuContext, GpuStats } from '../backend/webgpu/device.js';
import { argmaxRowsOf, logitsCached } from '../generate/cached_forward.js';
import { KVCache } from '../generate/kv_cache.js';
import { GPT } from '../models/gpt.js';
import { parseGPTConfig } from '../models/gpt_config.js';
import { moveToBackend } from '../nn/placement.js';
import { releaseStorage } from '../tensor/tensor.js';
import { trainStepAsync } from '../train/step.js';
import { Rng } from '../util/rng.js';
import { DECODE_CONFIGS } from './decode.js';
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
  await kernelTimes(ctx, 'profile', config, step, emit);
  return counts;
}

/** One row per kernel name of what `run` records (GPU ms, dispatches, share), largest first, then the total: `${workload}-kernel` and `${workload}-kernels` rows. */
async function kernelTimes(ctx: GpuContext, workload: string, config: string, run: () => Promise<unknown>, emit: (r: Row) => void): Promise<void> {
  ctx.startProfile();
  await run();
  const times = await ctx.stopProfile();
  const total = [...times.values()].reduce((s, t) => s + t.ms, 0);
  for (const [kernel, t] of [...times].sort((x, y) => y[1].ms - x[1].ms)) {
    emit({ workload: `${workload}-kernel`, backend: 'webgpu', config, kernel, gpu_ms: Number(t.ms.toFixed(3)), dispatches: t.count, share: Number((t.ms / total).toFixed(3)) });
  }
  emit({ workload: `${workload}-kernels`, backend: 'webgpu', config, gpu_ms: Number(total.toFixed(2)) });
}

/**
 * Where a batch-1 decode token of a GPT shape (124M by default) goes, for
 * `attn bench --backend webgpu --workloads profile-decode`: the host's counts
 * for one warm token after a 16-token prompt, its recording (JavaScript, up to
 * the submit of the argmax) and its wait for the 4-byte token id, then, with
 * `timestamp-query`, the GPU ms of each kernel of one token.
 */
export async function profileDecodeToken(ctx: GpuContext, emit: (r: Row) => void, config = '124M', warmup = 4): Promise<GpuStats> {
  const model = new GPT(parseGPTConfig(DECODE_CONFIGS[config]!), new Rng(1)).eval();
  moveToBackend(model);
  const cache = new KVCache(model.config, 1, 16 + warmup + 4);
  let token = 0;
  const times = { record: 0, wait: 0 };
  const next = async (ids: Int32Array, T: number) => {
    const t0 = performance.now();
    const scores = logitsCached(model, ids, [1, T], cache);
    const id = argmaxRowsOf(scores);
    const t1 = performance.now();
    token = (await id)[0]!;
    times.record = t1 - t0;
    times.wait = performance.now() - t1;
    releaseStorage(scores.storage);
  };
  try {
    await next(Int32Array.from({ length: 16 }, (_, i) => (i * 7919) % model.config.vocab_size), 16);
    for (let i = 0; i < warmup; i++) await next(Int32Array.of(token), 1);
    const before = { ...ctx.stats };
    await next(Int32Array.of(token), 1);
    const counts = diff(before, ctx.stats);
    emit({ workload: 'profile-decode', backend: 'webgpu', config, record_ms: Number(times.record.toFixed(3)), wait_ms: Number(times.wait.toFixed(3)), ...counts, encodeMs: Number(counts.encodeMs.toFixed(3)) });
    if (!ctx.canTimestamp) emit({ workload: 'profile-decode-kernels', backend: 'webgpu', config, error: 'no timestamp-query on this adapter: host counts only' });
    else await kernelTimes(ctx, 'profile-decode', config, () => next(Int32Array.of(token), 1), emit);
    return counts;
  } finally {
    cache.dispose();
  }
}
