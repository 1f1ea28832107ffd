/**
 * The memory-read limit a quantized decode runs against: the native streaming
 * read (stream_read.cc) over 512 MB in 2 MB pages, as readGGUF holds the
 * weights (docs/quantized_inference.md, fifth pass), taken the way a decode
 * runs: in a process of its own (bench/llama_worker.ts, impl "stream"), its
 * pool started and its buffer touched and read once before any pass is timed,
 * then several bursts of passes a moment apart; the best pass is the limit.
 *
 * Each pass also reports how its threads ran (streamRead's timing): the
 * concurrency (summed slice time / (threads × wall)) is 1 when all threads
 * read side by side the whole pass and 1/T when they ran one after another;
 * cpu_over_wall is the lowest share of its slice's wall time a thread was on a
 * core (below 1: descheduled). On a shared 2-core VM a low 2-thread read shows
 * as one or both, not as a slower memory (docs/quantized_inference.md, sixth pass).
 */
import { readFileSync } from 'node:fs';
import { median } from './configs.js';

export interface StreamReadAddon {
  setThreads(n: number): void;
  hugePageBuffer(bytes: number): ArrayBuffer | undefined;
  streamRead(bytes: Uint8Array, timing?: Float64Array): number;
}

export interface StreamPass {
  gb_per_s: number;
  concurrency: number;
  cpu_over_wall: number;
}

export interface StreamReadResult {
  threads: number;
  /** The best pass: the limit. */
  gb_per_s: number;
  median_gb_per_s: number;
  /** The best pass's concurrency and the passes' median. */
  concurrency: number;
  median_concurrency: number;
  /** The best pass's cpu_over_wall and the passes' median (below 1: a thread was descheduled). */
  cpu_over_wall: number;
  median_cpu_over_wall: number;
  /** Of the buffer, the MB the kernel holds in 2 MB pages. */
  huge_page_mb: number;
  passes: StreamPass[];
}

function anonHugePagesMb(): number {
  try {
    const m = /AnonHugePages:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

export interface StreamReadOptions {
  bytes?: number;
  /** Bursts of timed passes, `gapMs` apart (the 2-thread read on a shared VM swings between moments). */
  bursts?: number;
  passes?: number;
  gapMs?: number;
}

/** The streaming-read limit at `threads` threads, best of bursts × passes after a warm-up (see above). */
export function measureStreamRead(addon: StreamReadAddon, threads: number, o: StreamReadOptions = {}): StreamReadResult {
  const bytes = o.bytes ?? 512 << 20;
  addon.setThreads(threads);
  const timing = new Float64Array(4 * threads);
  // The pool's threads started and run once (a fresh pool's first job may find them still starting).
  addon.streamRead(new Uint8Array(1 << 20).fill(1), timing);
  const before = anonHugePagesMb();
  const huge = addon.hugePageBuffer(bytes);
  const buf = (huge ? new Uint8Array(huge) : new Uint8Array(bytes)).fill(1);
  const huge_page_mb = Math.min(bytes / 2 ** 20, Math.max(0, anonHugePagesMb() - before));
  addon.streamRead(buf, timing); // warm-up pass, not timed
  const passes: StreamPass[] = [];
  for (let b = 0; b < (o.bursts ?? 3); b++) {
    if (b > 0) sleep(o.gapMs ?? 250);
    for (let r = 0; r < (o.passes ?? 5); r++) {
      timing.fill(0);
      const t0 = performance.now();
      addon.streamRead(buf, timing);
      const wallNs = (performance.now() - t0) * 1e6;
      let busy = 0;
      let cpu = Infinity;
      for (let t = 0; t < threads; t++) {
        const span = timing[4 * t + 2]! - timing[4 * t + 1]!;
        busy += span;
        if (span > 0) cpu = Math.min(cpu, timing[4 * t + 3]! / span);
      }
      passes.push({ gb_per_s: bytes / wallNs, concurrency: busy / (threads * wallNs), cpu_over_wall: Number.isFinite(cpu) ? Math.min(1, cpu) : 0 });
    }
  }
  const best = passes.reduce((a, p) => (p.gb_per_s > a.gb_per_s ? p : a));
  return {
    threads, gb_per_s: best.gb_per_s, median_gb_per_s: median(passes.map((p) => p.gb_per_s)),
    concurrency: best.concurrency, median_concurrency: median(passes.map((p) => p.concurrency)),
    cpu_over_wall: best.cpu_over_wall, median_cpu_over_wall: median(passes.map((p) => p.cpu_over_wall)), huge_page_mb, passes,
  };
}
