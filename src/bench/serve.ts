import { spawn, type ChildProcess } from 'node:child_process';
import { UserError } from '../util/errors.js';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { writeDirAtomic } from '../io/atomic.js';
import { modelFiles } from '../io/model_dir.js';
import { GPT } from '../models/gpt.js';
import { parseGPTConfig } from '../models/gpt_config.js';
import { CharTokenizer } from '../tokenizers/char.js';
import { Rng } from '../util/rng.js';
import { median } from './configs.js';
import { DECODE_CONFIGS } from './decode.js';
import { LORA_BENCH, writeBenchAdapters } from './lora.js';
import type { Row } from './workloads.js';

const MAIN = fileURLToPath(new URL('../cli/main.js', import.meta.url));

export interface ServeBenchOptions {
  /** Concurrent streaming clients, one measurement each. */
  streams: number[];
  /** Seconds per measurement. */
  seconds: number;
  /** Seconds the clients run before the measurement starts (all streams joined, caches warm). */
  warmup: number;
  promptTokens: number;
  maxTokens: number;
  /** A model shape from DECODE_CONFIGS (random weights), unless `modelDir` is given. */
  config: string;
  modelDir?: string;
  /** Drive this running server instead of starting one. */
  url?: string;
  /** Model name to request from `url`. */
  model?: string;
  threads?: number;
  backend?: string;
  /** Seconds between resident-memory samples (from the server's /metrics). */
  rssEvery: number;
  /** Also serve this many LoRA adapters over the model (bench/lora.ts) and measure streams spread over them. */
  adapters?: number;
  log: (line: string) => void;
}

/**
 * A model directory of the given shape with random weights (speed does not
 * depend on their values) and a character tokenizer of vocab_size distinct
 * code points, so that every id the model can produce decodes to text.
 */
export function writeBenchModel(config: string, dir: string): void {
  const shape = DECODE_CONFIGS[config];
  if (!shape) throw new Error(`unknown model shape ${config} (${Object.keys(DECODE_CONFIGS).join(', ')})`);
  const model = new GPT(parseGPTConfig(shape), new Rng(1));
  const chars = Array.from({ length: model.config.vocab_size }, (_, i) => String.fromCodePoint(0x100 + i));
  writeDirAtomic(dir, modelFiles(model, new CharTokenizer(chars)));
}

/** `attn serve` in a child process (so its memory is its own); resolves with its URL. */
function spawnServer(dir: string, o: ServeBenchOptions, maxBatch: number, adapterDirs: string[] = []): Promise<{ child: ChildProcess; url: string }> {
  const args = [MAIN, 'serve', '--model', `bench=${dir}`, '--port', '0', '--no-cache', '--max-batch', String(maxBatch), '--max-queue', '4096', '--log-level', 'warn'];
  adapterDirs.forEach((a, i) => args.push('--adapter', `a${i}=${a}`));
  if (o.threads !== undefined) args.push('--threads', String(o.threads));
  if (o.backend !== undefined) args.push('--backend', o.backend);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((ok, fail) => {
    // The server printed why (its stderr is ours): one more line says what it means for the bench.
    child.once('exit', (code) => fail(new UserError(`the bench's attn serve exited with code ${code} before listening`)));
    createInterface({ input: child.stdout! }).once('line', (line) => {
      const m = /(http:\/\/\S+)\/v1/.exec(line);
      if (m) ok({ child, url: m[1]! });
      else fail(new Error(`unexpected first line from attn serve: ${line}`));
    });
  });
}

interface StreamStats {
  tokens: number;
  requests: number;
  errors: number;
  ttftMs: number[];
}

/** One client: streamed completions back to back until the deadline; tokens are counted as they arrive. */
async function client(url: string, model: string, o: ServeBenchOptions, window: { from: number; to: number }, rng: Rng, stats: StreamStats, vocab: number): Promise<void> {
  const deadline = window.to;
  const counting = () => performance.now() >= window.from;
  while (performance.now() < deadline) {
    const prompt = Array.from({ length: o.promptTokens }, () => String.fromCodePoint(0x100 + rng.int(vocab))).join('');
    const abort = new AbortController();
    const timer = setTimeout(() => abort.abort(), Math.max(0, deadline - performance.now()));
    const t0 = performance.now();
    let first = true;
    try {
      const res = await fetch(`${url}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model, prompt, max_tokens: o.maxTokens, temperature: 0, stream: true }),
        signal: abort.signal,
      });
      if (res.status !== 200 || !res.body) {
        stats.errors++;
        await res.text().catch(() => '');
        continue;
      }
      const decoder = new TextDecoder();
      let buffered = '';
      for await (const bytes of res.body) {
        buffered += decoder.decode(bytes as Uint8Array, { stream: true });
        let cut: number;
        while ((cut = buffered.indexOf('\n\n')) >= 0) {
          const event = buffered.slice(0, cut);
          buffered = buffered.slice(cut + 2);
          if (!event.startsWith('data: ') || event === 'data: [DONE]') continue;
          const chunk = JSON.parse(event.slice(6)) as { error?: unknown; choices: Array<{ finish_reason: string | null }> };
          if (chunk.error) throw new Error(JSON.stringify(chunk.error));
          // One chunk per generated token (the finish chunk carries no token).
          if (chunk.choices[0]?.finish_reason != null) continue;
          if (first && counting()) stats.ttftMs.push(performance.now() - t0);
          first = false;
          if (counting()) stats.tokens++;
        }
      }
      if (counting()) stats.requests++;
    } catch (e) {
      if (!abort.signal.aborted) stats.errors++;
    } finally {
      clearTimeout(timer);
    }
  }
}

const percentile = (xs: number[], p: number): number => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]!;
};

async function residentMB(url: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = /^process_resident_memory_bytes (\d+(?:\.\d+)?(?:e\+\d+)?)/m.exec(text);
  return m ? Number(m[1]) / 2 ** 20 : NaN;
}

/** `streams` clients against `models` (client i asks models[i % models.length]). */
async function measure(url: string, models: string[], streams: number, o: ServeBenchOptions, vocab: number): Promise<Row> {
  const stats: StreamStats = { tokens: 0, requests: 0, errors: 0, ttftMs: [] };
  const rss: number[] = [];
  const start = performance.now() + o.warmup * 1000;
  const window = { from: start, to: start + o.seconds * 1000 };
  const rng = new Rng(streams);
  const clients = Promise.all(Array.from({ length: streams }, (_, i) => client(url, models[i % models.length]!, o, window, new Rng(rng.int(1e9) + i), stats, vocab)));
  await new Promise((r) => setTimeout(r, o.warmup * 1000));
  rss.push(await residentMB(url));
  const sampler = setInterval(() => void residentMB(url).then((mb) => rss.push(mb), () => undefined), o.rssEvery * 1000);
  await clients;
  clearInterval(sampler);
  const seconds = (performance.now() - start) / 1000;
  rss.push(await residentMB(url));
  return {
    workload: 'serve',
    streams,
    seconds: Number(seconds.toFixed(1)),
    requests: stats.requests,
    tokens: stats.tokens,
    tokens_per_s: stats.tokens / seconds,
    ttft_p50_ms: percentile(stats.ttftMs, 50),
    ttft_p95_ms: percentile(stats.ttftMs, 95),
    ttft_p99_ms: percentile(stats.ttftMs, 99),
    errors: stats.errors,
    rss_start_mb: rss[0]!,
    rss_end_mb: rss[rss.length - 1]!,
    rss_max_mb: Math.max(...rss),
    rss_samples_mb: rss.map((x) => Math.round(x)).join(' '),
  };
}

/**
 * `attn bench serve`: N concurrent streaming clients on loopback for a fixed
 * time each (after a warm-up in which they already run; only tokens, first
 * tokens and requests inside the measured window count), against `attn serve` (started here with a random-weight model of
 * the given shape, or at --url). Greedy decoding (sampling a 50k vocabulary
 * costs about as much as a small model's step and would measure the sampler);
 * the semantic cache is off and prompts are random, so every token is generated.
 */
export async function benchServe(o: ServeBenchOptions): Promise<Row[]> {
  let dir: string | null = null;
  let child: ChildProcess | null = null;
  let url = o.url;
  let vocab = 50257;
  let adapterDirs: string[] = [];
  try {
    if (!url) {
      let modelDir = o.modelDir;
      if (!modelDir) {
        dir = mkdtempSync(join(tmpdir(), 'attn-bench-serve-'));
        modelDir = join(dir, 'model');
        o.log(`writing a ${o.config}-shape model with random weights to ${modelDir}`);
        writeBenchModel(o.config, modelDir);
      }
      vocab = parseGPTConfig(DECODE_CONFIGS[o.config] ?? {}).vocab_size;
      if (o.adapters) {
        dir ??= mkdtempSync(join(tmpdir(), 'attn-bench-serve-'));
        adapterDirs = writeBenchAdapters(o.config, join(dir, 'adapters'), o.adapters);
        o.log(`${o.adapters} LoRA adapters (r ${LORA_BENCH.r} on ${LORA_BENCH.targets.join(', ')}) over it`);
      }
      ({ child, url } = await spawnServer(modelDir, o, Math.max(...o.streams), adapterDirs));
      o.log(`attn serve at ${url}`);
    }
    const rows: Row[] = [];
    for (const n of o.streams) {
      const row = await measure(url, [o.model ?? 'bench'], n, o, vocab);
      rows.push({ ...row, config: o.config, prompt: o.promptTokens, max_tokens: o.maxTokens });
      o.log(describe(row));
      if (adapterDirs.length === 0) continue;
      // The same streams spread over the adapters, in the same server (one batch mixes them all),
      // interleaved with more base-only rounds: the ratio is of medians, as load on the machine drifts.
      const base = [Number(row.tokens_per_s)];
      const mixed: number[] = [];
      for (let round = 0; round < 3; round++) {
        if (round > 0) {
          const again = await measure(url, [o.model ?? 'bench'], n, o, vocab);
          base.push(Number(again.tokens_per_s));
          o.log(describe(again));
        }
        const m = await measure(url, adapterDirs.map((_, i) => `a${i}`), n, o, vocab);
        mixed.push(Number(m.tokens_per_s));
        rows.push({ ...m, adapters: adapterDirs.length, config: o.config, prompt: o.promptTokens, max_tokens: o.maxTokens });
        o.log(`${describe(m)}  [over ${adapterDirs.length} adapters]`);
      }
      const ratio = median(mixed) / median(base);
      rows.push({ workload: 'serve', measure: 'adapters_vs_base', streams: n, adapters: adapterDirs.length, base_tokens_per_s: median(base), adapters_tokens_per_s: median(mixed), ratio_vs_base: ratio });
      o.log(`${String(n).padStart(3)} streams over ${adapterDirs.length} adapters: ${(ratio * 100).toFixed(0)}% of the base alone's tokens/s (medians of 3 interleaved rounds each)`);
    }
    return rows;
  } finally {
    child?.kill('SIGTERM');
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
}

export function describe(r: Row): string {
  const f = (x: unknown) => Math.round(Number(x));
  return `${String(r.streams).padStart(3)} streams: ${Number(r.tokens_per_s).toFixed(1).padStart(7)} tok/s, TTFT p50/p95/p99 ${f(r.ttft_p50_ms)}/${f(r.ttft_p95_ms)}/${f(r.ttft_p99_ms)} ms, ${r.requests} requests, ${r.errors} errors, RSS ${f(r.rss_start_mb)} → ${f(r.rss_end_mb)} MB (max ${f(r.rss_max_mb)})`;
}
