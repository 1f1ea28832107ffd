import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadAddon } from '../backend/native/index.js';
import { llamaToGGUF } from '../io/gguf_llama.js';
import { writeGGUF } from '../io/gguf_write.js';
import { Llama } from '../models/llama.js';
import { withoutAllocation } from '../nn/init.js';
import { parseLlamaConfig, type LlamaConfigInput } from '../models/llama_config.js';
import { buildTokenizer } from '../tokenizers/index.js';
import { Rng } from '../util/rng.js';
import { PREFILL, type StreamArgs, type WorkerArgs, type WorkerResult } from './llama_worker.js';
import type { StreamReadResult } from './stream_read.js';
import type { Row } from './workloads.js';

/**
 * `attn bench --workloads llama`: Llama-family inference beside llama.cpp on
 * the same GGUF file. For each shape (random weights: speed does not depend
 * on their values) and type, the model is exported once with attn's GGUF
 * writer, then each implementation loads that file in a fresh process at 1
 * and 2 threads, interleaved (attn, llama.cpp, attn, …) so that a noisy
 * neighbour hurts both alike, and the best of each is reported: batch-1
 * decode tokens/s after a 16-token prompt, prefill tokens/s of a 256-token
 * prompt, peak RSS against the file size, and for attn the weight bytes read
 * per decoded token against the memory bandwidth measured in the same run.
 */

export const LLAMA_BENCH_SHAPES: Record<string, LlamaConfigInput> = {
  'smollm2-135m': { n_layer: 30, n_embd: 576, n_head: 9, n_kv_head: 3, head_dim: 64, intermediate_size: 1536, vocab_size: 49152, block_size: 2048, rms_norm_eps: 1e-5, rope_theta: 100000, tie_word_embeddings: true },
  'tinyllama-1.1b': { n_layer: 22, n_embd: 2048, n_head: 32, n_kv_head: 4, head_dim: 64, intermediate_size: 5632, vocab_size: 32000, block_size: 2048, rms_norm_eps: 1e-5, rope_theta: 10000, tie_word_embeddings: false },
};
export const LLAMA_BENCH_TYPES = ['f32', 'q8_0', 'q4_0'] as const;
export type LlamaBenchType = (typeof LLAMA_BENCH_TYPES)[number];

const WORKER = fileURLToPath(new URL('./llama_worker.js', import.meta.url));
export const LLAMA_CPP = { pkg: 'node-llama-cpp', version: '3.21.1' };

/**
 * node-llama-cpp's folder in the referees' layout (<repo>/.referees/node-llama-cpp@3.21.1/,
 * shared with test/referees.ts), installed there on first use; null with the reason when it cannot be.
 */
export function llamaCppPackage(root = process.cwd()): { dir: string } | { why: string } {
  const prefix = resolve(root, '.referees', `${LLAMA_CPP.pkg}@${LLAMA_CPP.version}`);
  const dir = join(prefix, 'node_modules', LLAMA_CPP.pkg);
  if (existsSync(join(dir, 'package.json'))) return { dir };
  mkdirSync(prefix, { recursive: true });
  const r = spawnSync('npm', ['install', '--prefix', prefix, '--no-save', '--no-audit', '--no-fund', `${LLAMA_CPP.pkg}@${LLAMA_CPP.version}`], { encoding: 'utf8', timeout: 600_000 });
  if (r.status === 0 && existsSync(join(dir, 'package.json'))) return { dir };
  return { why: `cannot install ${LLAMA_CPP.pkg}@${LLAMA_CPP.version} into ${prefix} (offline?): ${(r.stderr || r.error?.message || '').trim().split('\n').at(-1)}` };
}

/** Weight bytes a decode step reads: every matrix once (the token embedding only one row, unless it is the tied head). */
export function weightBytesPerToken(shape: LlamaConfigInput, type: LlamaBenchType): number {
  const c = parseLlamaConfig(shape);
  const perValue = type === 'f32' ? 4 : type === 'q8_0' ? 34 / 32 : 18 / 32;
  const kv = c.n_kv_head * c.head_dim;
  const layer = c.n_embd * (c.n_head * c.head_dim) * 2 + c.n_embd * kv * 2 + 3 * c.n_embd * c.intermediate_size;
  return (c.n_layer * layer + c.vocab_size * c.n_embd) * perValue;
}

/**
 * The memory-read limit (GB/s) at `threads` threads: the native streaming read over 512 MB in
 * 2 MB pages, in a worker process of its own, warmed, best of 15 passes (bench/stream_read.ts);
 * null without the native addon. Taken in the bench's own process it read low: ~29 GB/s at
 * 2 threads where a fresh process read ~50 and both decoders streamed more than 29
 * (docs/quantized_inference.md, sixth pass).
 */
export function streamBandwidth(threads: number): StreamReadResult | null {
  if (!loadAddon()) return null;
  return runLlamaWorker({ impl: 'stream', threads });
}

export function runLlamaWorker(args: StreamArgs): StreamReadResult;
export function runLlamaWorker(args: WorkerArgs): WorkerResult;
export function runLlamaWorker(args: WorkerArgs | StreamArgs): WorkerResult | StreamReadResult {
  // node-llama-cpp: calls arriving from different libuv threads make its 2-thread decode 2.5–3.7× slower; one libuv thread avoids it.
  const env = { ...process.env, ...(args.impl === 'llama.cpp' ? { UV_THREADPOOL_SIZE: '1' } : {}) };
  const r = spawnSync(process.execPath, [WORKER, JSON.stringify(args)], { encoding: 'utf8', env, maxBuffer: 1 << 22, timeout: 1_800_000 });
  if (r.status !== 0) throw new Error(`${args.impl}${'file' in args ? ` on ${args.file}` : ''}: ${(r.stderr || r.error?.message || `exit ${r.status}`).trim().split('\n').slice(-3).join(' ')}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as WorkerResult | StreamReadResult;
}

export interface LlamaBenchOptions {
  shapes: string[];
  types: LlamaBenchType[];
  threads: number[];
  decodeSteps: number;
  prefillReps: number;
  /** Rounds of (attn, llama.cpp) per thread count; the best round counts. */
  rounds: number;
  /** Time each op of an attn decode step (q4_0 only). */
  profile: boolean;
  /**
   * Where the GGUF files are kept between runs (the 1B shape's F32 file is
   * 4.4 GB and takes minutes to write); unset: a temporary folder, removed.
   */
  cacheDir?: string;
  log: (s: string) => void;
  emit: (r: Row) => void;
}

/**
 * Random values for one parameter: weights N(0, 0.02²) as the Llama's own
 * initialisation draws them, norm gains 1. Seeded by the parameter's name, so
 * every type's file holds the same model.
 */
function randomValues(parameter: string, shape: number[]): Float32Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  if (shape.length < 2) return out.fill(1);
  let seed = 1;
  for (const ch of parameter) seed = (Math.imul(seed, 31) + ch.charCodeAt(0)) >>> 0;
  const rng = new Rng(seed);
  for (let i = 0; i < n; i++) out[i] = 0.02 * rng.normal();
  return out;
}

/**
 * A random-weight model of `shape` written as GGUF files of each type into
 * `dir`. The model is built without values and each tensor is drawn only as
 * the writer reaches it: a 1B model never exists whole in this process (its
 * fp32 values alone are 4.4 GB).
 */
export function writeLlamaBenchFiles(shapeName: string, types: LlamaBenchType[], dir: string, log: (s: string) => void): Map<LlamaBenchType, string> {
  const shape = LLAMA_BENCH_SHAPES[shapeName]!;
  const files = new Map<LlamaBenchType, string>();
  const model = withoutAllocation(() => new Llama(parseLlamaConfig(shape), new Rng(1))).eval();
  const tokenizer = buildTokenizer('bpe', 'the quick brown fox jumps over the lazy dog. '.repeat(20), 300);
  for (const type of types) {
    const t0 = performance.now();
    const path = join(dir, `${shapeName}-${type}.gguf`);
    if (existsSync(path)) {
      // Kept from an earlier run (writeGGUF renames a file into place only once it is whole).
      files.set(type, path);
      log(`llama ${shapeName}: the ${type} GGUF file (${(statSync(path).size / 2 ** 20).toFixed(0)} MB) kept in ${dir}`);
      continue;
    }
    const { metadata, tensors } = llamaToGGUF(model, tokenizer, type, shapeName, randomValues);
    writeGGUF(path, metadata, tensors);
    files.set(type, path);
    log(`llama ${shapeName}: wrote the ${type} GGUF file (${(statSync(path).size / 2 ** 20).toFixed(0)} MB) in ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  }
  return files;
}

export function benchLlama(o: LlamaBenchOptions): void {
  const cpp = llamaCppPackage();
  if ('why' in cpp) o.log(`llama: llama.cpp skipped (${cpp.why}); attn alone`);
  // The memory-read limit, in a fresh worker before and after each round of each thread count
  // (so each round's fraction uses a limit taken in the same minutes); the higher read counts.
  const limit = (threads: number, at: Record<string, unknown>): StreamReadResult | null => {
    const r = streamBandwidth(threads);
    if (r) {
      o.emit({
        workload: 'llama', measure: 'memory_read_bandwidth', gb_per_s: r.gb_per_s, median_gb_per_s: r.median_gb_per_s, concurrency: r.concurrency,
        median_concurrency: r.median_concurrency, cpu_over_wall: r.cpu_over_wall, median_cpu_over_wall: r.median_cpu_over_wall, huge_page_mb: r.huge_page_mb, how: 'native streaming read of 512 MB in 2 MB pages, fresh worker, best of 15 passes', threads, ...at,
      });
    }
    return r;
  };
  for (const shapeName of o.shapes) {
    const shape = LLAMA_BENCH_SHAPES[shapeName];
    if (!shape) throw new Error(`unknown llama shape ${shapeName}`);
    const dir = o.cacheDir ? resolve(o.cacheDir) : mkdtempSync(join(tmpdir(), 'attn-bench-llama-'));
    if (o.cacheDir) mkdirSync(dir, { recursive: true });
    try {
      const files = writeLlamaBenchFiles(shapeName, o.types, dir, o.log);
      for (const [type, file] of files) {
        const fileMb = statSync(file).size / 2 ** 20;
        const impls: Array<'attn' | 'llama.cpp'> = ['attn', ...('dir' in cpp ? (['llama.cpp'] as const) : [])];
        const best = new Map<string, Row>();
        const bytes = weightBytesPerToken(shape, type);
        const rows: Row[] = [];
        for (const threads of o.threads) {
          for (let round = 0; round < o.rounds; round++) {
            const before = limit(threads, { shape: shapeName, type, round, when: 'before' });
            const roundRows: Row[] = [];
            for (const impl of impls) {
              const r = runLlamaWorker({ impl, file, threads, decodeSteps: o.decodeSteps, prefillReps: o.prefillReps, llamaCpp: 'dir' in cpp ? cpp.dir : undefined });
              roundRows.push({
                workload: 'llama', shape: shapeName, type, impl, threads, round,
                decode_tokens_per_s: r.decode_tokens_per_s, prefill_tokens_per_s: r.prefill_tokens_per_s,
                decode_tokens_per_cpu_s: r.decode_tokens_per_cpu_s, prefill_tokens_per_cpu_s: r.prefill_tokens_per_cpu_s,
                weight_bytes_per_token: bytes, decode_weight_gb_per_s: (bytes * r.decode_tokens_per_s) / 1e9,
                peak_rss_mb: r.max_rss_mb, decode_peak_rss_mb: r.decode_max_rss_mb, file_mb: fileMb, rss_over_file: r.max_rss_mb / fileMb, decode_rss_over_file: r.decode_max_rss_mb / fileMb, load_s: r.load_s,
              });
            }
            const after = limit(threads, { shape: shapeName, type, round, when: 'after' });
            // The honest maximum sustained read of these minutes: the higher of the two.
            const gb = before || after ? Math.max(before?.gb_per_s ?? 0, after?.gb_per_s ?? 0) : null;
            for (const row of roundRows) {
              row.limit_gb_per_s = gb;
              row.limit_before_gb_per_s = before?.gb_per_s ?? null;
              row.limit_after_gb_per_s = after?.gb_per_s ?? null;
              // Against the streaming read at this run's own thread count, taken around this round.
              row.bandwidth_fraction_same_threads = gb ? Number(row.decode_weight_gb_per_s) / gb : null;
            }
            const frac = (impl: string) => {
              const row = roundRows.find((x) => x.impl === impl);
              return row ? `${impl} ${Number(row.decode_weight_gb_per_s).toFixed(1)} GB/s${gb ? ` = ${Number(row.bandwidth_fraction_same_threads).toFixed(2)}` : ''}` : null;
            };
            o.log(`llama ${shapeName} ${type} ${threads}t round ${round}: limit ${gb?.toFixed(1) ?? '—'} GB/s (before ${before?.gb_per_s.toFixed(1) ?? '—'}, after ${after?.gb_per_s.toFixed(1) ?? '—'}); ${impls.map(frac).filter(Boolean).join('; ')}`);
            rows.push(...roundRows);
          }
        }
        // Against the highest read of any thread count around any of this file's rounds.
        const top = Math.max(0, ...rows.map((r) => Number(r.limit_gb_per_s ?? 0)));
        for (const row of rows) {
          row.bandwidth_fraction = top ? Number(row.decode_weight_gb_per_s) / top : null;
          o.emit(row);
          for (const k of ['decode_tokens_per_s', 'prefill_tokens_per_s'] as const) {
            const key = `${row.impl}:${k}`;
            if (!best.has(key) || Number(best.get(key)![k]) < Number(row[k])) best.set(key, row);
          }
        }
        const line = (impl: string) => {
          const d = best.get(`${impl}:decode_tokens_per_s`);
          const p = best.get(`${impl}:prefill_tokens_per_s`);
          if (!d || !p) return null;
          return { d, p, text: `${impl.padEnd(9)} decode ${Number(d.decode_tokens_per_s).toFixed(1).padStart(6)} tok/s (${d.threads}t) prefill ${Number(p.prefill_tokens_per_s).toFixed(0).padStart(5)} tok/s (${p.threads}t) peak RSS decoding ${Number(d.decode_peak_rss_mb).toFixed(0)} MB (${Number(d.decode_rss_over_file).toFixed(2)}× file), with prefill ${Number(d.peak_rss_mb).toFixed(0)} MB; per CPU-second: decode ${Number(d.decode_tokens_per_cpu_s).toFixed(1)}, prefill ${Number(p.prefill_tokens_per_cpu_s).toFixed(0)}` };
        };
        const a = line('attn');
        const c = line('llama.cpp');
        o.log(`llama ${shapeName} ${type} (${fileMb.toFixed(0)} MB):`);
        if (a) o.log(`  ${a.text}; weights ${Number(a.d.decode_weight_gb_per_s).toFixed(1)} GB/s = ${(Number(a.d.bandwidth_fraction) * 100).toFixed(0)} % of the highest read (${(Number(a.d.bandwidth_fraction_same_threads) * 100).toFixed(0)} % of the ${a.d.threads}-thread limit read around that round, ${Number(a.d.limit_gb_per_s).toFixed(1)} GB/s)`);
        if (c) o.log(`  ${c.text}; weights ${Number(c.d.decode_weight_gb_per_s).toFixed(1)} GB/s = ${(Number(c.d.bandwidth_fraction_same_threads) * 100).toFixed(0)} % of the ${c.d.threads}-thread limit read around that round`);
        if (a && c) {
          const ratio = { decode: Number(a.d.decode_tokens_per_s) / Number(c.d.decode_tokens_per_s), prefill: Number(a.p.prefill_tokens_per_s) / Number(c.p.prefill_tokens_per_s) };
          o.log(`  attn / llama.cpp: decode ${ratio.decode.toFixed(2)}×, prefill ${ratio.prefill.toFixed(2)}× (best settings each)`);
          o.emit({ workload: 'llama', shape: shapeName, type, reference: 'llama.cpp', decode_ratio: ratio.decode, prefill_ratio: ratio.prefill, best: true });
        }
        if (o.profile && a) {
          const r = runLlamaWorker({ impl: 'attn', file, threads: Number(a.d.threads), decodeSteps: 8, prefillReps: 0, profile: true });
          const show = (p: Record<string, number>) => Object.entries(p).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(', ');
          o.emit({ workload: 'llama', shape: shapeName, type, impl: 'attn', threads: Number(a.d.threads), measure: 'decode_step_ms_by_op', ...r.profile! });
          o.emit({ workload: 'llama', shape: shapeName, type, impl: 'attn', threads: Number(a.d.threads), measure: 'prefill_ms_by_op', ...r.prefill_profile! });
          o.log(`  one attn decode step, CPU-ms by op: ${show(r.profile!)}`);
          o.log(`  one attn ${PREFILL}-token prefill, CPU-ms by op: ${show(r.prefill_profile!)}`);
        }
      }
    } finally {
      if (!o.cacheDir) rmSync(dir, { recursive: true, force: true });
    }
  }
}
