import type { CausalLM } from '../models/causal_lm.js';
import { GPT } from '../models/gpt.js';
import { parseGPTConfig } from '../models/gpt_config.js';
import { Scheduler, type SchedulerOptions } from '../serve/scheduler.js';
import { Sequence } from '../serve/sequence.js';
import { Rng } from '../util/rng.js';
import { median } from './configs.js';
import type { Row } from './workloads.js';

/**
 * The paged KV cache's goals (issue #21), as `attn bench --workloads prefix`,
 * through the serving scheduler in this process (no HTTP, so the figures are
 * the scheduler's and the cache's alone):
 *
 * - shared prefix: `requests` requests arriving together, each a 1 000-token
 *   system prompt plus a short question of its own: time to first token
 *   (p50) and peak KV memory, paged with prefix sharing against the
 *   contiguous caches (each request its own cache, sized for its prompt and
 *   max_tokens: what serving did before) and against paging without sharing;
 * - no shared prefix: `requests` streams of distinct prompts, tokens/s paged
 *   against contiguous, rounds interleaved (medians), so paging's own cost shows.
 *
 * Wall times on a shared machine follow the share of the cores a run gets,
 * so each figure also comes as the process's CPU time (first token) or
 * tokens per CPU second (streams): the work itself.
 *
 * The model is small so that the run takes a minute or two on two busy cores:
 * a 4-layer GPT, 4 heads of 32, context 1 152, random weights (greedy decoding).
 */
export const PREFIX_BENCH_SHAPE = { n_layer: 4, n_head: 4, n_embd: 128, block_size: 1152, vocab_size: 256, bias: true, dropout: 0 };

export interface PrefixBenchOptions {
  requests?: number;
  systemTokens?: number;
  newTokens?: number;
  rounds?: number;
  log?: (s: string) => void;
}

interface RunFigures {
  ttftP50Ms: number;
  /** The process's CPU time (all threads) from the submissions to the median first token: the work, whatever share of the cores the run got. */
  ttftCpuP50Ms: number;
  peakKvBytes: number;
  tokensPerS: number;
  /** Tokens per CPU second of the process. */
  tokensPerCpuS: number;
  ids: number[][];
}

const cpuMs = (since: NodeJS.CpuUsage) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
};

/** Every prompt submitted at once to a fresh scheduler; first-token times, peak KV bytes, generated tokens/s. */
async function runAll(model: CausalLM, opts: SchedulerOptions, prompts: number[][], newTokens: number): Promise<RunFigures> {
  const c = model.config;
  const slotBytes = c.n_layer * 2 * c.n_embd * 4; // keys and values of one position, every layer (no grouped heads in this GPT)
  let peak = 0;
  const seqs: Sequence[] = [];
  const scheduler: Scheduler = new Scheduler(model, opts, {
    onStep: () => {
      const bytes = scheduler.paged ? scheduler.paged.pool.usedBlocks * scheduler.paged.blockBytes : seqs.reduce((n, s) => n + (s.cache ? s.cache.capacity * slotBytes : 0), 0);
      peak = Math.max(peak, bytes);
    },
  });
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const first: number[] = prompts.map(() => NaN);
  const firstCpu: number[] = prompts.map(() => NaN);
  const ids = prompts.map(() => [] as number[]);
  const done = prompts.map((p, i) => new Promise<void>((resolve) => {
    const seq = new Sequence(p, { maxTokens: newTokens, seed: i, temperature: 0 }, {
      onToken: (id) => {
        if (ids[i]!.length === 0) [first[i], firstCpu[i]] = [performance.now() - t0, cpuMs(cpu0)];
        ids[i]!.push(id);
      },
      onFinish: () => resolve(),
    });
    seqs.push(seq);
    scheduler.submit(seq);
  }));
  await Promise.all(done);
  const seconds = (performance.now() - t0) / 1000;
  const cpuSeconds = cpuMs(cpu0) / 1000;
  await scheduler.drain();
  const generated = ids.reduce((n, x) => n + x.length, 0);
  return { ttftP50Ms: median(first), ttftCpuP50Ms: median(firstCpu), peakKvBytes: peak, tokensPerS: generated / seconds, tokensPerCpuS: generated / cpuSeconds, ids };
}

export async function benchPrefix(o: PrefixBenchOptions = {}): Promise<Row[]> {
  const requests = o.requests ?? 64;
  const systemTokens = o.systemTokens ?? 1000;
  const newTokens = o.newTokens ?? 16;
  const rounds = o.rounds ?? 3;
  const log = o.log ?? (() => {});
  const model = new GPT(parseGPTConfig(PREFIX_BENCH_SHAPE), new Rng(7)).eval();
  const rng = new Rng(11);
  const tokens = (n: number) => Array.from({ length: n }, () => rng.int(PREFIX_BENCH_SHAPE.vocab_size));
  const system = tokens(systemTokens);
  const sharedPrompts = Array.from({ length: requests }, (_, i) => [...system, ...tokens(8 + (i % 17))]);
  const base: SchedulerOptions = { maxBatch: requests, maxQueue: requests };
  const modes: Record<string, SchedulerOptions> = {
    paged: { ...base, kvPool: {} },
    contiguous: base,
    paged_unshared: { ...base, kvPool: { prefixSharing: false } },
  };
  const config = `GPT ${PREFIX_BENCH_SHAPE.n_layer}L ${PREFIX_BENCH_SHAPE.n_embd}d ctx ${PREFIX_BENCH_SHAPE.block_size}`;

  // Warm-up (compilation, first touch of the pools' pages), not measured.
  for (const opts of Object.values(modes)) await runAll(model, opts, sharedPrompts.slice(0, 4), 2);
  // Shared prefix: rounds interleaved over the three modes, medians.
  const shared: Record<string, RunFigures[]> = { paged: [], contiguous: [], paged_unshared: [] };
  for (let r = 0; r < Math.max(1, rounds - 1); r++) {
    for (const [mode, opts] of Object.entries(modes)) {
      const f = await runAll(model, opts, sharedPrompts, newTokens);
      shared[mode]!.push(f);
      log(`prefix shared ${mode} round ${r + 1}: ttft p50 ${f.ttftP50Ms.toFixed(0)} ms (${f.ttftCpuP50Ms.toFixed(0)} CPU ms), peak KV ${(f.peakKvBytes / 2 ** 20).toFixed(1)} MiB`);
    }
  }
  const med = (mode: string, k: 'ttftP50Ms' | 'ttftCpuP50Ms' | 'peakKvBytes' | 'tokensPerS' | 'tokensPerCpuS', from = shared) => median(from[mode]!.map((f) => f[k]));
  const identical = shared.paged!.every((f, i) => JSON.stringify(f.ids) === JSON.stringify(shared.contiguous![i]!.ids));
  const ttftRatio = med('paged', 'ttftP50Ms') / med('contiguous', 'ttftP50Ms');
  const kvRatio = med('paged', 'peakKvBytes') / med('contiguous', 'peakKvBytes');
  const sharedRow: Row = {
    workload: 'prefix', case: 'shared_prefix', config, requests, system_tokens: systemTokens, new_tokens: newTokens, rounds: shared.paged!.length,
    ttft_p50_ms: med('paged', 'ttftP50Ms'), unshared_ttft_p50_ms: med('contiguous', 'ttftP50Ms'), paged_unshared_ttft_p50_ms: med('paged_unshared', 'ttftP50Ms'),
    kv_peak_mb: med('paged', 'peakKvBytes') / 2 ** 20, unshared_kv_peak_mb: med('contiguous', 'peakKvBytes') / 2 ** 20, paged_unshared_kv_peak_mb: med('paged_unshared', 'peakKvBytes') / 2 ** 20,
    ttft_cpu_p50_ms: med('paged', 'ttftCpuP50Ms'), unshared_ttft_cpu_p50_ms: med('contiguous', 'ttftCpuP50Ms'), ttft_cpu_ratio: med('paged', 'ttftCpuP50Ms') / med('contiguous', 'ttftCpuP50Ms'),
    ttft_ratio: ttftRatio, kv_ratio: kvRatio, ttft_goal: 0.15, kv_goal: 0.25, goal_met: ttftRatio <= 0.15 && kvRatio <= 0.25,
    tokens_per_s: med('paged', 'tokensPerS'), identical_tokens: identical,
  };

  // No shared prefix: distinct prompts, throughput paged against contiguous.
  const distinct = Array.from({ length: requests }, (_, i) => tokens(48 + (i % 33)));
  const streams: Record<string, RunFigures[]> = { paged: [], contiguous: [] };
  const streamTokens = newTokens * 4;
  for (let r = 0; r < rounds; r++) {
    for (const mode of r % 2 ? ['contiguous', 'paged'] : ['paged', 'contiguous']) {
      const f = await runAll(model, modes[mode]!, distinct, streamTokens);
      streams[mode]!.push(f);
      log(`prefix streams ${mode} round ${r + 1}: ${f.tokensPerS.toFixed(0)} tok/s (${f.tokensPerCpuS.toFixed(0)} per CPU second)`);
    }
  }
  const loss = 1 - med('paged', 'tokensPerS', streams) / med('contiguous', 'tokensPerS', streams);
  const streamsRow: Row = {
    workload: 'prefix', case: 'no_shared_prefix', config, requests, new_tokens: streamTokens, rounds,
    tokens_per_s: med('paged', 'tokensPerS', streams), contiguous_tokens_per_s: med('contiguous', 'tokensPerS', streams),
    tokens_per_cpu_s: med('paged', 'tokensPerCpuS', streams), contiguous_tokens_per_cpu_s: med('contiguous', 'tokensPerCpuS', streams),
    cpu_throughput_loss: 1 - med('paged', 'tokensPerCpuS', streams) / med('contiguous', 'tokensPerCpuS', streams),
    throughput_loss: loss, loss_goal: 0.05, goal_met: loss <= 0.05,
    identical_tokens: streams.paged!.every((f, i) => JSON.stringify(f.ids) === JSON.stringify(streams.contiguous![i]!.ids)),
  };
  return [sharedRow, streamsRow];
}
