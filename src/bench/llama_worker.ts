/**
 * One measurement of `attn bench --workloads llama`, in a process of its own
 * (spawned by bench/llama.ts) so that its peak memory, thread pools and JIT
 * state belong to it alone: load a GGUF file with attn or with llama.cpp
 * (node-llama-cpp), then time batch-1 decoding after a 16-token prompt and the
 * prefill of a 256-token prompt. Prints one JSON line. Impl "stream" instead
 * measures the memory-read limit (bench/stream_read.ts) in a fresh process, as
 * a decode runs: the bench takes it before and after each round.
 *
 *   node llama_worker.js '{"impl":"attn"|"llama.cpp","file":…,"threads":…,"decodeSteps":…,"prefillReps":…,"llamaCpp":DIR?}'
 *   node llama_worker.js '{"impl":"stream","threads":…}'
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { selectBackend } from '../backend/select.js';
import { scoresCached } from '../generate/cached_forward.js';
import { KVCache } from '../generate/kv_cache.js';
import { argmax } from '../generate/sampling.js';
import { loadModel } from '../io/model_dir.js';
import { noGrad } from '../tensor/autograd.js';
import { Rng } from '../util/rng.js';
import { median } from './configs.js';
import { decodeOpProfile, fusedDecodeTrace } from './llama_profile.js';
import { measureStreamRead, type StreamReadResult } from './stream_read.js';
import { loadAddon } from '../backend/native/index.js';

export const PROMPT = 16;
export const PREFILL = 256;

export interface WorkerArgs {
  impl: 'attn' | 'llama.cpp';
  file: string;
  threads: number;
  decodeSteps: number;
  prefillReps: number;
  /** node-llama-cpp's package folder (impl llama.cpp). */
  llamaCpp?: string;
  /** attn: also time each op kind of one decode step. */
  profile?: boolean;
  /** attn, native backend: also trace where the fused decode call's time goes (llama_profile.ts, fusedDecodeTrace). */
  trace?: boolean;
}

/** The memory-read limit at `threads` threads, measured in a worker of its own. */
export interface StreamArgs {
  impl: 'stream';
  threads: number;
}

export interface WorkerResult {
  decode_tokens_per_s: number;
  prefill_tokens_per_s: number;
  load_s: number;
  max_rss_mb: number;
  /** Peak RSS after loading and decoding, before the 256-token prefill (whose activations are larger). */
  decode_max_rss_mb: number;
  /**
   * Tokens per second of CPU time (all threads): on a shared machine a
   * process is often descheduled, and at 1 thread this is the rate it would
   * have had the core to itself.
   */
  decode_tokens_per_cpu_s: number;
  prefill_tokens_per_cpu_s: number;
  profile?: Record<string, number>;
  /** The same for one 256-token prefill (ms by op). */
  prefill_profile?: Record<string, number>;
  decode_trace?: Record<string, number>;
}

/**
 * This process's peak resident memory (VmHWM), in MB. Not getrusage's
 * maxRSS: Linux carries that across exec, so a worker would report its
 * parent's peak (the parent holds the fp32 model it exported).
 */
function peakRssMb(): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
    if (m) return Number(m[1]) / 1024;
  } catch {
    // not Linux: fall through
  }
  return process.resourceUsage().maxRSS / 1024;
}

const cpuSeconds = (since: NodeJS.CpuUsage): number => {
  const c = process.cpuUsage(since);
  return (c.user + c.system) / 1e6;
};

const prompt = (n: number, vocab: number, seed: number) => {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => rng.int(vocab));
};

function runAttn(a: WorkerArgs): WorkerResult {
  selectBackend('native', a.threads);
  const t0 = performance.now();
  const { model } = loadModel(a.file);
  const load_s = (performance.now() - t0) / 1000;
  const V = model.config.vocab_size;
  const decode: number[] = [];
  const cache = new KVCache(model.config, 1, Math.max(PREFILL, PROMPT + a.decodeSteps + 8));
  // Two passes: the first warms the JIT and the allocator (a server's steady state, not a fresh process's first tokens).
  let decodeCpu = 0;
  const scores = new Float32Array(V); // one buffer for every step's scores, as generate's engine decodes one row
  for (const timed of [false, true]) {
    cache.reset();
    noGrad(() => {
      let next = argmax(scoresCached(model, Int32Array.from(prompt(PROMPT, V, 1)), [1, PROMPT], cache));
      const c0 = process.cpuUsage();
      for (let i = 0; i < (timed ? a.decodeSteps : 4); i++) {
        const s = performance.now();
        next = argmax(scoresCached(model, Int32Array.of(next), [1, 1], cache, scores));
        if (timed) decode.push(performance.now() - s);
      }
      if (timed) decodeCpu = cpuSeconds(c0);
    });
  }
  const decode_max_rss_mb = peakRssMb();
  const prefill: number[] = [];
  const ids = Int32Array.from(prompt(PREFILL, V, 2));
  let prefillCpu = 0;
  for (let r = 0; r < a.prefillReps + 1; r++) {
    cache.reset();
    const s = performance.now();
    const c0 = process.cpuUsage();
    scoresCached(model, ids, [1, PREFILL], cache);
    if (r > 0) { prefill.push(performance.now() - s); prefillCpu += cpuSeconds(c0); }
  }
  const addon = a.trace ? loadAddon() : null;
  const decode_trace = addon ? fusedDecodeTrace(addon, model, cache, V, a.threads) : undefined;
  const profile = a.profile ? decodeOpProfile(model, cache, V) : undefined;
  const prefill_profile = a.profile ? decodeOpProfile(model, cache, V, 2, PREFILL) : undefined;
  return {
    decode_tokens_per_s: 1000 / median(decode), prefill_tokens_per_s: (PREFILL * 1000) / median(prefill), load_s, max_rss_mb: peakRssMb(), decode_max_rss_mb,
    decode_tokens_per_cpu_s: a.decodeSteps / decodeCpu, prefill_tokens_per_cpu_s: (PREFILL * a.prefillReps) / prefillCpu, ...(profile ? { profile, prefill_profile } : {}),
    ...(decode_trace ? { decode_trace } : {}),
  };
}

async function runLlamaCpp(a: WorkerArgs): Promise<WorkerResult> {
  const { getLlama, LlamaLogLevel } = await import(pathToFileURL(join(a.llamaCpp!, 'dist', 'index.js')).href);
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const t0 = performance.now();
  const model = await llama.loadModel({ modelPath: a.file, gpuLayers: 0 });
  const load_s = (performance.now() - t0) / 1000;
  const V: number = model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length ?? model.tokens?.length ?? 32000;
  const ctx = await model.createContext({ contextSize: PREFILL + 64, batchSize: PREFILL, threads: a.threads });
  const seq = ctx.getSequence();
  const decode: number[] = [];
  let decodeCpu = 0;
  for (const timed of [false, true]) {
    await seq.clearHistory();
    let c0 = process.cpuUsage();
    let last = performance.now();
    let n = 0;
    for await (const _ of seq.evaluate(prompt(PROMPT, V, 1), { temperature: 0 })) {
      const now = performance.now();
      if (timed && n > 0) decode.push(now - last); // the first token comes after the prompt's evaluation
      if (n === 0) c0 = process.cpuUsage();
      last = now;
      if (++n > (timed ? a.decodeSteps : 4)) break;
    }
    if (timed) decodeCpu = cpuSeconds(c0);
  }
  const decode_max_rss_mb = peakRssMb();
  const prefill: number[] = [];
  const ids = prompt(PREFILL, V, 2);
  let prefillCpu = 0;
  for (let r = 0; r < a.prefillReps + 1; r++) {
    await seq.clearHistory();
    const s = performance.now();
    const c0 = process.cpuUsage();
    await seq.evaluateWithoutGeneratingNewTokens(ids);
    if (r > 0) { prefill.push(performance.now() - s); prefillCpu += cpuSeconds(c0); }
  }
  await ctx.dispose();
  await model.dispose();
  return {
    decode_tokens_per_s: 1000 / median(decode), prefill_tokens_per_s: (PREFILL * 1000) / median(prefill), load_s, max_rss_mb: peakRssMb(), decode_max_rss_mb,
    decode_tokens_per_cpu_s: a.decodeSteps / decodeCpu, prefill_tokens_per_cpu_s: (PREFILL * a.prefillReps) / prefillCpu,
  };
}

function runStream(a: StreamArgs): StreamReadResult {
  const addon = loadAddon();
  if (!addon) throw new Error('the native addon is not built: no streaming read');
  return measureStreamRead(addon, a.threads);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const a = JSON.parse(process.argv[2]!) as WorkerArgs | StreamArgs;
  const r = a.impl === 'stream' ? runStream(a) : a.impl === 'attn' ? runAttn(a) : await runLlamaCpp(a);
  console.log(JSON.stringify(r));
  process.exit(0);
}
