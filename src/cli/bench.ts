import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, Option } from 'commander';
import { loadAddon } from '../backend/native/index.js';
import { BENCH_CONFIGS, GEMM_SIZES, SKINNY_ROWS, type TrainMode } from '../bench/configs.js';
import { runTorch, torchUnavailable } from '../bench/torch.js';
import { benchGemm, benchSkinny, benchTrainStep, type Row } from '../bench/workloads.js';
import { benchTokenizers } from '../bench/tokenizers.js';
import { benchDecode, benchPrefill, DECODE_JOBS } from '../bench/decode.js';
import { structuredBench } from '../bench/structured.js';
import { benchQuant, measureBandwidth, QUANT_ROWS, QUANT_SHAPES, QUANT_TYPES } from '../bench/quant.js';
import { benchRecipe, describeRecipe, runTorchRecipe } from '../bench/recipe.js';
import { benchLlama, LLAMA_BENCH_SHAPES, LLAMA_BENCH_TYPES, type LlamaBenchType } from '../bench/llama.js';
import { benchSpeculative, SPECULATIVE_PAIRS, type DraftK } from '../bench/speculative.js';
import { benchPrefix, PREFIX_BENCH_SHAPE } from '../bench/prefix.js';
import { benchLoRAStep, LORA_BENCH, LORA_MODES, runTorchLoRA, type LoRAMode } from '../bench/lora.js';
import { benchServeCommand } from './bench_serve.js';
import { benchFleetCommand } from './bench_fleet.js';
import { fablesCorpus } from '../data/fables.js';
import { UserError } from '../util/errors.js';
import { readTextFile } from '../io/read_text.js';
import { benchWebGpu } from '../bench/webgpu.js';
import { envBackendChoice } from '../backend/select.js';
import { useBackend } from './backend_flags.js';
import { int, posInt } from './flags.js';

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

interface BenchOptions {
  config?: string;
  workloads: string;
  threads?: number;
  backend: string;
  steps: number;
  json?: boolean;
  torch: boolean;
  text?: string;
  seeds: string;
  llamaShapes?: string;
  llamaTypes?: string;
  llamaCache?: string;
  rounds: number;
  profile: boolean;
  benchCache: string;
  draftK: DraftK[];
  targetWidth: string[];
  draftWidth?: number;
  panels: boolean;
  precision: string;
  recompute: string;
}

const SHAKESPEARE = '../shared/data/tinyshakespeare.txt';

/**
 * Each attn measurement runs in a fresh child process, so that thread pools,
 * JIT state and peak memory (max RSS) belong to that workload alone.
 */
function runWorker(workload: string, arg: string, threads: number, backendName: string, steps: number, extra: string[] = []): Row {
  const r = spawnSync(process.execPath, [MAIN, 'bench-worker', workload, arg, '--threads', String(threads), '--backend', backendName, '--steps', String(steps), ...extra], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) throw new UserError(`bench worker failed: ${(r.stderr || '').trim().split('\n').at(-1)}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as Row;
}

const metric = (r: Row): number => Number(r.tokens_per_s ?? r.gflops ?? 0);
const best = (rows: Row[]): Row | undefined => rows.reduce<Row | undefined>((b, r) => (!b || metric(r) > metric(b) ? r : b), undefined);

/** One result as a line; a training row names its mode when it is not the default fp32 one, or when `namedMode` (several modes side by side). */
function describe(r: Row, namedMode = false): string {
  const what = r.workload === 'gemm' ? `gemm n=${r.n}` : r.workload === 'skinny' ? `x·Wᵀ ${r.rows}×768·768×2304` : r.workload === 'train' ? `train ${r.config}${namedMode || r.precision === 'bf16' || r.recompute ? ` ${modeName(r)}` : ''}` : `${r.workload} ${r.config}${r.dtype === 'int8' ? ' int8' : ''}`;
  const value = r.gflops !== undefined ? `${Number(r.gflops).toFixed(1)} GFLOP/s` : `${Math.round(Number(r.tokens_per_s))} tok/s`;
  const rss = r.max_rss_mb !== undefined ? `, peak RSS ${Math.round(Number(r.max_rss_mb))} MB` : '';
  return `${what.padEnd(12)} ${value.padStart(16)} (${r.impl}, ${r.backend ? `${r.backend}, ` : ''}${r.threads} thread${r.threads === 1 ? '' : 's'}${rss})`;
}

async function runBench(o: BenchOptions): Promise<void> {
  const configs = (o.config ?? 'S,M,G').split(',').map((c) => c.trim().toUpperCase());
  for (const c of configs) if (!BENCH_CONFIGS[c]) throw new UserError(`--config: unknown config "${c}" (S, M, G or L)`);
  if (o.text !== undefined && !(existsSync(o.text) && statSync(o.text).isFile())) throw new UserError(`--text ${o.text}: no such file`);
  const trainModes = parseTrainModes(o.precision, o.recompute);
  const kinds = o.workloads.split(',').map((w) => w.trim());
  for (const k of kinds) if (!['train', 'gemm', 'skinny', 'tokenizers', 'decode', 'prefill', 'recipe', 'quant', 'llama', 'lora', 'structured', 'speculative', 'prefix', 'gemm-sweep', 'profile', 'profile-decode'].includes(k)) throw new UserError(`--workloads: unknown workload "${k}" (train, gemm, skinny, tokenizers, decode, prefill, recipe, quant, llama, lora, structured, speculative, prefix; webgpu only: gemm-sweep, profile, profile-decode)`);
  const llamaShapes = (o.llamaShapes ?? Object.keys(LLAMA_BENCH_SHAPES).join(',')).split(',').map((s) => s.trim());
  for (const s of llamaShapes) if (!LLAMA_BENCH_SHAPES[s]) throw new UserError(`--llama-shapes: unknown shape "${s}" (${Object.keys(LLAMA_BENCH_SHAPES).join(', ')})`);
  const llamaTypes = (o.llamaTypes ?? LLAMA_BENCH_TYPES.join(',')).split(',').map((s) => s.trim());
  for (const t of llamaTypes) if (!(LLAMA_BENCH_TYPES as readonly string[]).includes(t)) throw new UserError(`--llama-types: unknown type "${t}" (${LLAMA_BENCH_TYPES.join(', ')})`);
  const seeds = o.seeds.split(',').map((x) => Number(x.trim()));
  if (seeds.some((x) => !Number.isInteger(x) || x < 0)) throw new UserError(`--seeds: expected non-negative integers separated by commas (got "${o.seeds}")`);
  if ((o.backend === 'auto' ? envBackendChoice() : o.backend) === 'webgpu') {
    // On the GPU, S is too small to say anything unless asked for by name.
    await benchWebGpu({ configs: o.config ? configs : ['M', 'G'], steps: o.steps, gemmSizes: [1024, 2048, 4096], workloads: kinds }, (r) => console.log(o.json ? JSON.stringify(r) : Object.entries(r).map(([k, v]) => `${k}=${v}`).join(' ')));
    return;
  }
  const backendName = useBackend({ backend: o.backend }).backend.name;
  const cores = loadAddon()?.threads() ?? 1;
  const attnThreads = o.threads !== undefined ? [o.threads] : backendName === 'native' ? [...new Set([1, cores])] : [1];
  const noTorch = o.torch ? torchUnavailable() : 'disabled by --no-torch';
  const log = (s: string) => (o.json ? undefined : console.log(s));
  const emit = (r: Row) => (o.json ? console.log(JSON.stringify(r)) : undefined);
  log(`attn bench: backend ${backendName}, threads ${attnThreads.join('/')}; PyTorch ${noTorch ? `skipped (${noTorch})` : 'at 1 and 2 threads'}`);

  const jobs: Array<[string, string]> = [
    ...(kinds.includes('train') ? configs.map((c): [string, string] => ['train', c]) : []),
    ...(kinds.includes('gemm') ? GEMM_SIZES.map((n): [string, string] => ['gemm', String(n)]) : []),
    ...(kinds.includes('skinny') ? SKINNY_ROWS.map((n): [string, string] => ['skinny', String(n)]) : []),
    ...DECODE_JOBS.filter(([w]) => kinds.includes(w)),
  ];
  for (const [workload, arg] of jobs) {
    const steps = workload === 'train' ? (arg === 'S' ? o.steps * 8 : arg === 'M' ? o.steps : Math.max(3, o.steps >> 1)) : workload === 'decode' ? o.steps * 8 : workload === 'skinny' ? o.steps * 4 : o.steps * 2;
    const modes = workload === 'train' ? trainModes : [null];
    const byMode = modes.map((m) => attnThreads.map((t) => ({ ...runWorker(workload, arg, t, backendName, steps, m ? modeFlags(m) : []), impl: 'attn' })));
    byMode.flat().forEach(emit);
    if (byMode.length > 1) compareModes(arg, byMode.map((rows) => best(rows)!), log, emit);
    const mine = byMode[0]!;
    // The PyTorch reference has no int8 path: int8 rows are compared with its fp32 decoding.
    const torchArg = arg.replace(/-int8$/, '');
    const theirs = noTorch || arg === 'L' ? [] : [1, 2].flatMap((t) => runTorch([`${workload}:${torchArg}`], t, steps));
    theirs.forEach(emit);
    const a = best(mine)!;
    const p = best(theirs);
    // Several training modes: each its own row (tokens/s, peak RSS), named; the reference is compared with the first.
    for (const rows of byMode) log(describe(best(rows)!, byMode.length > 1));
    if (p) {
      log(describe(p));
      const ratio = metric(a) / metric(p);
      log(`${''.padEnd(12)} ${`${ratio.toFixed(2)}×`.padStart(16)} attn / ${p.impl === 'numpy' ? 'NumPy (OpenBLAS)' : 'PyTorch'}, best settings each`);
      const key = workload === 'gemm' ? 'n' : workload === 'skinny' ? 'rows' : 'config';
      emit({ workload, [key]: key === 'config' ? arg : Number(arg), reference: p.impl, ratio_vs_reference: ratio });
    }
  }
  if (kinds.includes('tokenizers')) await tokenizerBench(o, log, emit);
  if (kinds.includes('quant')) quantBench(o, attnThreads, log, emit);
  if (kinds.includes('llama')) {
    // llama.cpp's referee figures are best of 1 and 2 threads: attn gets the same two settings.
    const threads = o.threads !== undefined ? [o.threads] : [...new Set([1, Math.max(2, cores)])];
    benchLlama({ shapes: llamaShapes, types: llamaTypes as LlamaBenchType[], threads, decodeSteps: o.steps * 8, prefillReps: Math.max(1, o.steps >> 1), rounds: o.rounds, profile: o.profile, cacheDir: o.llamaCache, log, emit });
  }
  if (kinds.includes('lora')) loraBench(o, attnThreads, backendName, noTorch, log, emit);
  if (kinds.includes('structured')) await structuredBench(o.steps, log, emit);
  if (kinds.includes('speculative')) speculativeBench(o, log, emit);
  if (kinds.includes('prefix')) await prefixBench(o, log, emit);
  if (kinds.includes('recipe')) recipeBench(o, seeds, backendName, o.threads ?? Math.max(...attnThreads), noTorch, log, emit);
}

/** --precision fp32,bf16 × --recompute off|on|both: the training modes to run, the first being the baseline. */
function parseTrainModes(precision: string, recompute: string): TrainMode[] {
  const precisions = precision.split(',').map((p) => p.trim());
  for (const p of precisions) if (p !== 'fp32' && p !== 'bf16') throw new UserError(`--precision: unknown precision "${p}" (fp32, bf16, or both: fp32,bf16)`);
  if (!['off', 'on', 'both'].includes(recompute)) throw new UserError(`--recompute: expected off, on or both (got "${recompute}")`);
  const recomputes = recompute === 'both' ? [false, true] : [recompute === 'on'];
  return precisions.flatMap((p) => recomputes.map((r) => ({ precision: p as TrainMode['precision'], recompute: r })));
}

const modeFlags = (m: TrainMode): string[] => ['--precision', m.precision, ...(m.recompute ? ['--recompute'] : [])];
const modeName = (m: { precision?: unknown; recompute?: unknown }): string => `${String(m.precision)}${m.recompute ? '+recompute' : ''}`;

/** Each training mode against the first (the baseline): tokens/s and peak RSS ratios. */
function compareModes(config: string, rows: Row[], log: (s: string) => void, emit: (r: Row) => void): void {
  const base = rows[0]!;
  for (const r of rows.slice(1)) {
    const speed = metric(r) / metric(base);
    const memory = Number(r.max_rss_mb) / Number(base.max_rss_mb);
    log(`train ${config} ${modeName(r)} / ${modeName(base)}: ${speed.toFixed(2)}× tokens/s, ${(memory * 100).toFixed(0)}% peak RSS`);
    emit({ workload: 'train', config, compare: `${modeName(r)} / ${modeName(base)}`, tokens_per_s_ratio: speed, max_rss_ratio: memory });
  }
}

/**
 * x·Wᵀ at SmolLM2-135M's shapes for f32, int8 (per-channel) and GGUF's q8_0
 * and q4_0 blocks, 1 row (decode, bound by reading the weights) and 256 rows
 * (prefill), in this process at each thread count; weight GB/s against the
 * measured memory read bandwidth.
 */
function quantBench(o: BenchOptions, threads: number[], log: (s: string) => void, emit: (r: Row) => void): void {
  const addon = loadAddon();
  for (const t of threads) {
    addon?.setThreads(t);
    const { gbPerS: bandwidth, how } = measureBandwidth();
    emit({ workload: 'quant', measure: 'memory_read_bandwidth', gb_per_s: bandwidth, how, threads: t });
    log(`quant: memory read bandwidth ${bandwidth.toFixed(1)} GB/s (${how}, ${t} thread${t === 1 ? '' : 's'})`);
    for (const rows of QUANT_ROWS) {
      for (const [K, N] of QUANT_SHAPES) {
        const cells: string[] = [];
        for (const type of QUANT_TYPES) {
          const m = benchQuant(K, N, type, rows, rows === 1 ? o.steps * 8 : Math.max(2, o.steps >> 1));
          const r: Row = { ...m, threads: t, bandwidth_fraction: Number(m.weight_gb_per_s) / bandwidth };
          emit(r);
          cells.push(rows === 1 ? `${type} ${Number(r.ms).toFixed(3)} ms ${Number(r.weight_gb_per_s).toFixed(1)} GB/s` : `${type} ${Number(r.ms).toFixed(1)} ms ${Number(r.gflops).toFixed(0)} GFLOP/s`);
        }
        log(`quant ${rows === 1 ? 'decode ' : 'prefill'} ${`${K}→${N}`.padEnd(11)} ${cells.join(' | ')} (${t} thread${t === 1 ? '' : 's'})`);
      }
    }
  }
}

/**
 * LoRA against full fine-tuning on the GPT-2 124M shape (bench/lora.ts),
 * each mode in its own child process (peak RSS is per process), attn at its
 * best thread count; then the PyTorch twin's LoRA step at 1 and 2 threads.
 */
function loraBench(o: BenchOptions, threads: number[], backendName: string, noTorch: string | null, log: (s: string) => void, emit: (r: Row) => void): void {
  const steps = Math.max(3, o.steps >> 1);
  log(`lora: GPT-2 124M shape (ctx 256, batch 4), r ${LORA_BENCH.r} on ${LORA_BENCH.targets.join(', ')}, against full fine-tuning; ${steps} timed steps each`);
  const mine = new Map<LoRAMode, Row>();
  for (const mode of LORA_MODES) {
    const rows = threads.map((t) => ({ ...runWorker('lora', mode, t, backendName, steps), impl: 'attn' }));
    rows.forEach(emit);
    const b = best(rows)!;
    mine.set(mode, b);
    log(`lora ${mode.padEnd(4)} ${`${Math.round(metric(b))} tok/s`.padStart(12)}  peak RSS ${Math.round(Number(b.max_rss_mb))} MB  (attn, ${b.threads} thread${b.threads === 1 ? '' : 's'}; ${Number(b.trainable_params).toLocaleString('en')} trainable)`);
  }
  const [full, lora] = [mine.get('full')!, mine.get('lora')!];
  const speedup = metric(lora) / metric(full);
  const rss = Number(lora.max_rss_mb) / Number(full.max_rss_mb);
  log(`lora / full: ${speedup.toFixed(2)}× tokens/s, ${(rss * 100).toFixed(0)}% peak RSS  [goals ≥ 1.3×, ≤ 50%]`);
  const summary: Row = { workload: 'lora', measure: 'lora_vs_full', speedup, rss_fraction: rss };
  if (!noTorch) {
    const theirs = [1, 2].map((t) => runTorchLoRA('lora', t, steps));
    theirs.forEach(emit);
    const p = best(theirs)!;
    const ratio = metric(lora) / metric(p);
    log(`lora torch ${`${Math.round(metric(p))} tok/s`.padStart(12)}  peak RSS ${Math.round(Number(p.max_rss_mb))} MB  (PyTorch ${p.torch}, ${p.threads} thread${p.threads === 1 ? '' : 's'})`);
    log(`lora attn / PyTorch: ${ratio.toFixed(2)}×  [goal ≥ 2×]`);
    summary.reference = 'pytorch';
    summary.ratio_vs_reference = ratio;
  }
  emit(summary);
}

/** Issue #21: batch-1 greedy decoding of a 12-layer model with and without a 2-layer draft (bench/speculative.ts). */
/** --target-width: "384", "128,384". */
function targetWidths(value: string): string[] {
  const widths = value.split(',').map((s) => s.trim());
  for (const w of widths) if (!SPECULATIVE_PAIRS[w]) throw new UserError(`--target-width: no 12-layer target of width "${w}" (${Object.keys(SPECULATIVE_PAIRS).join(', ')})`);
  return widths;
}

/** --draft-k: "4", "3,5,auto", "auto:6". */
function draftKs(value: string): DraftK[] {
  return value.split(',').map((part) => {
    const m = /^auto(?::(\d+))?$/.exec(part.trim());
    if (m) return { auto: true as const, max: m[1] ? int(m[1]) : 8 };
    const k = Number(part);
    if (!(Number.isInteger(k) && k >= 1)) throw new UserError(`--draft-k: "${part}" is neither a whole number ≥ 1 nor auto[:MAX]`);
    return k;
  });
}

function speculativeBench(o: BenchOptions, log: (s: string) => void, emit: (r: Row) => void): void {
  const path = o.text ?? (existsSync(SHAKESPEARE) ? SHAKESPEARE : undefined);
  if (!path) return log(`speculative: skipped (${SHAKESPEARE} not found; pass --text FILE)`);
  // It runs in this process (the other decode workloads run in workers started with --threads):
  // it sizes the thread pool itself, or --threads 1 would measure all cores.
  const threads = o.threads === undefined ? {} : { threads: o.threads };
  for (const width of o.targetWidth) for (const r of benchSpeculative(path, { cacheDir: o.benchCache, width, ks: o.draftK, tokens: 96, reps: Math.max(1, o.steps >> 1), log, ...threads, panels: o.panels, ...(o.draftWidth === undefined ? {} : { draftWidth: o.draftWidth }) })) {
    emit(r);
    log(`speculative ${r.config}, k ${r.k}: ${Number(r.tokens_per_s).toFixed(1)} tok/s with the draft, ${Number(r.target_alone_tokens_per_s).toFixed(1)} alone: ${Number(r.speedup).toFixed(2)}× (${Number(r.speedup_cpu).toFixed(2)}× by CPU time; ${Number(r.speedup_predicted).toFixed(2)}× from the parts: step ${Number(r.target_step_ms_cpu).toFixed(3)} ms, verify ${Number(r.verify_pass_ms_cpu).toFixed(3)}, draft step ${Number(r.draft_step_ms_cpu).toFixed(3)}); acceptance ${(100 * Number(r.acceptance_rate)).toFixed(1)} %, ${Number(r.tokens_per_target_pass).toFixed(2)} tokens per target pass; ${r.identical_tokens ? 'identical tokens' : 'TOKENS DIFFER'}`);
  }
}

/** Issue #21: the paged KV cache in serving — a shared 1 000-token system prompt, and streams with none (bench/prefix.ts). */
async function prefixBench(o: BenchOptions, log: (s: string) => void, emit: (r: Row) => void): Promise<void> {
  log(`prefix: 64 requests sharing a 1 000-token system prompt, then 64 streams with no shared prefix, on a ${PREFIX_BENCH_SHAPE.n_layer}-layer ${PREFIX_BENCH_SHAPE.n_embd}-wide GPT; a minute or more`);
  const [shared, streams] = await benchPrefix({ rounds: o.rounds, log });
  emit(shared!);
  emit(streams!);
  const pct = (x: unknown) => `${(100 * Number(x)).toFixed(1)} %`;
  log(`prefix shared: ttft p50 ${Number(shared!.ttft_p50_ms).toFixed(0)} ms vs ${Number(shared!.unshared_ttft_p50_ms).toFixed(0)} ms unshared (${pct(shared!.ttft_ratio)}, goal ≤ 15 %; in CPU time ${pct(shared!.ttft_cpu_ratio)}); KV ${Number(shared!.kv_peak_mb).toFixed(1)} MiB vs ${Number(shared!.unshared_kv_peak_mb).toFixed(1)} MiB (${pct(shared!.kv_ratio)}, goal ≤ 25 %); ${shared!.identical_tokens ? 'identical tokens' : 'TOKENS DIFFER'}`);
  log(`prefix streams: ${Number(streams!.tokens_per_s).toFixed(0)} tok/s paged vs ${Number(streams!.contiguous_tokens_per_s).toFixed(0)} contiguous (loss ${pct(streams!.throughput_loss)}, goal ≤ 5 %; per CPU second ${pct(streams!.cpu_throughput_loss)}); ${streams!.identical_tokens ? 'identical tokens' : 'TOKENS DIFFER'}`);
}

/**
 * nanoGPT's CPU recipe end to end, per seed: attn (its best thread count) at
 * each --precision, and PyTorch (FP32) at 1 thread, its faster setting for
 * this small model (see train S). bf16 beside fp32 over many seeds is issue
 * #21's "the recipe reaches the same validation loss distribution".
 */
function recipeBench(o: BenchOptions, seeds: number[], backendName: string, threads: number, noTorch: string | null, log: (s: string) => void, emit: (r: Row) => void): void {
  const path = o.text ?? (existsSync(SHAKESPEARE) ? SHAKESPEARE : undefined);
  if (!path) return log(`recipe: skipped (${SHAKESPEARE} not found; pass --text FILE)`);
  const precisions = [...new Set(parseTrainModes(o.precision, 'off').map((m) => m.precision))];
  log(`recipe: nanoGPT's shakespeare-char CPU recipe (2000 steps) on ${path}, seeds ${seeds.join(', ')}; attn at ${threads} thread${threads === 1 ? '' : 's'} (${precisions.join(', ')})${noTorch ? '' : ', PyTorch at 1'}; a few minutes per seed and side`);
  const rows: Row[] = [];
  for (const seed of seeds) {
    const mine: Row[] = precisions.map((p) => ({ ...runWorker('recipe', String(seed), threads, backendName, 0, ['--text', path, '--precision', p]), impl: 'attn' }));
    const theirs = noTorch ? [] : [runTorchRecipe(path, seed, 1)];
    for (const r of [...mine, ...theirs]) {
      rows.push(r);
      emit(r);
      log(describeRecipe(r));
    }
  }
  const groups: Array<[string, Row[]]> = [
    ...precisions.map((p): [string, Row[]] => [`attn ${p}`, rows.filter((r) => r.impl === 'attn' && r.precision === p)]),
    ['pytorch', rows.filter((r) => r.impl === 'pytorch')],
  ];
  for (const [who, mine] of groups) {
    if (mine.length < 2) continue;
    const mean = (k: string) => mine.reduce((s, r) => s + Number(r[k]), 0) / mine.length;
    const sd = (k: string) => Math.sqrt(mine.reduce((s, r) => s + (Number(r[k]) - mean(k)) ** 2, 0) / (mine.length - 1));
    log(`recipe ${who}, ${mine.length} seeds: val ${mean('val_estimate').toFixed(4)} (sd ${sd('val_estimate').toFixed(4)}; 20 batches), ${mean('val_full').toFixed(4)} (sd ${sd('val_full').toFixed(4)}; whole split), ${mean('seconds').toFixed(0)} s`);
  }
}

/** GPT-2 BPE encode throughput against tiktoken (WASM) and js-tiktoken, and BPE training time. */
async function tokenizerBench(o: BenchOptions, log: (s: string) => void, emit: (r: Row) => void): Promise<void> {
  const path = o.text ?? (existsSync(SHAKESPEARE) ? SHAKESPEARE : undefined);
  const text = path ? readTextFile(path) : fablesCorpus(1_000_000);
  log(`tokenizers on ${path ?? 'the built-in fables corpus (1 MB)'}:`);
  for (const r of await benchTokenizers({ text, repeats: Math.max(3, o.steps) })) {
    emit(r as Row);
    if (r.workload === 'bpe-train') log(`  BPE training to vocab ${r.vocab_size}: ${Number(r.seconds).toFixed(2)} s`);
    else log(`  encode ${String(r.impl).padEnd(12)} ${Number(r.mb_per_s).toFixed(1).padStart(6)} MB/s`);
  }
}

export function benchCommand(): Command {
  return new Command('bench')
    .description('time training (configs S, M, G), GEMM, skinny products, decode, prefill and tokenizers, beside PyTorch when /usr/bin/python3 has torch')
    .option('--config <list>', 'training configs to run, e.g. S or S,M (default S,M,G; with --backend webgpu M,G)')
    .option('--workloads <list>', 'train, gemm, skinny (x·Wᵀ for 1–256 rows: decoding\'s products), tokenizers, decode (batch-1 KV-cache decoding, 124M and S, fp32 and int8; with --backend webgpu, 124M each token read back before the next is recorded, then through the decoder `attn sample` runs, its greedy steps queued 1, 2, 4 and 8 ahead of their reads), prefill (256-token prompt, 124M), quant (x·Wᵀ at SmolLM2-135M shapes, f32/int8/q8_0/q4_0, 1 and 256 rows; not in the default list), llama (Llama-family decode and prefill beside llama.cpp on the same GGUF file, SmolLM2-135M and TinyLlama-1.1B shapes, f32/q8_0/q4_0; minutes; not in the default list), recipe (nanoGPT\'s 2000-step CPU recipe on tinyshakespeare, minutes per seed; not in the default list), lora (LoRA r 8 against full fine-tuning on the GPT-2 124M shape: tokens/s and peak RSS, and a PyTorch LoRA twin; not in the default list), structured (issue #18\'s goals: 500 json_schema requests validated by ajv from a random and a 30-step model, and the constrained-decoding mask\'s cost at 124M; not in the default list), speculative (batch-1 greedy decoding of a 12-layer character model (--target-width) with and without a 2-layer draft distilled from it: speed-up by wall and CPU time as medians of paired rounds, identical tokens checked, and a round\'s parts timed on their own; the pair is trained once into --bench-cache, minutes; not in the default list), prefix (the paged KV cache in serving: 64 requests sharing a 1 000-token system prompt, time to first token and KV memory against contiguous caches, and 64 streams with no shared prefix, tokens/s paged against contiguous; a 4-layer GPT, a minute or more; not in the default list); with --backend webgpu also gemm-sweep (every WGSL GEMM config on the square and training shapes, GFLOP/s each, and the ATTN_WEBGPU_GEMM value picking the best) profile (one train step of each --config: dispatches, bind groups, buffers, writes, submits, encode ms, and GPU ms per kernel where the adapter has timestamp-query) and profile-decode (the same for one batch-1 decode token of the 124M shape, with its recording and wait ms)', 'train,gemm,skinny,tokenizers,decode,prefill')
    .option('--text <file>', 'text for the tokenizer and recipe workloads (default: ../shared/data/tinyshakespeare.txt; tokenizers fall back to built-in fables)')
    .option('--threads <n>', 'run attn at this thread count only (default: 1 and all cores, best counts)', int)
    .addOption(new Option('--backend <name>', 'compute backend (webgpu: train M and G, 124M decode and GEMM on the GPU, in one process)').choices(['auto', 'js', 'native', 'webgpu']).default('auto'))
    .option('--steps <n>', 'timed repetitions per workload (after warm-up)', posInt, 5)
    .option('--json', 'one JSON line per measurement')
    .option('--no-torch', 'skip the PyTorch reference')
    .option('--seeds <list>', 'seeds for the recipe workload, e.g. 1337,1,2', '1337')
    .option('--llama-shapes <list>', `llama workload: shapes (${Object.keys(LLAMA_BENCH_SHAPES).join(', ')}; default all)`)
    .option('--llama-types <list>', `llama workload: GGUF types (${LLAMA_BENCH_TYPES.join(', ')}; default all)`)
    .option('--llama-cache <dir>', 'llama workload: keep the random-weight GGUF files in DIR and reuse them (the 1B F32 file is 4.4 GB); default a temporary folder, removed')
    .option('--rounds <n>', 'llama workload: interleaved attn / llama.cpp rounds per thread count (best counts); prefix workload: interleaved rounds per mode (medians; 3 or more for the A/B)', posInt, 1)
    .option('--profile', 'llama workload: also time each op of one attn decode step and one 256-token prefill (every type)')
    .option('--bench-cache <dir>', 'speculative workload: where the trained target/draft pair is kept between runs', join(homedir(), '.cache', 'attn', 'bench'))
    .option('--target-width <list>', `speculative workload: the 12-layer targets to measure, by width, comma-separated (${Object.keys(SPECULATIVE_PAIRS).join(', ')}; 384: 85 MB of weights, a step bound by reading them; 128: 9.4 MB, a step mostly per-op overhead)`, targetWidths, ['384'])
    .option('--no-panels', 'speculative workload: multiply with the target\'s weights as a Linear stores them, not also in column panels (nn/panel_linear.ts): the verifying pass then costs 1.3–1.7 steps, not about one')
    .option('--draft-width <n>', 'speculative workload: the 2-layer draft\'s width (default 128; a wider draft costs more per step and may agree with a wide target more often)', (v: string) => {
      const n = Number(v);
      if (!(Number.isInteger(n) && n >= 16 && n % 4 === 0)) throw new UserError(`--draft-width: "${v}" is not a whole multiple of 4 (the draft has 4 heads), at least 16`);
      return n;
    })
    .option('--draft-k <list>', 'speculative workload: draft lengths to measure side by side, comma-separated: tokens per round, or auto[:MAX] (chosen each round from the acceptance and the measured costs, at most MAX, default 8)', draftKs, [4, { auto: true, max: 8 }])
    .option('--precision <list>', 'train workloads: matrix products in fp32, bf16 (bf16 operands, FP32 sums), or both (fp32,bf16: compared)', 'fp32')
    .option('--recompute <mode>', 'train workloads: activation recomputation off, on, or both (compared: tokens/s and peak RSS); config L (GPT-2 124M at context 1024, batch 4) is its measurement', 'off')
    .addCommand(benchServeCommand())
    .addCommand(benchFleetCommand())
    .action((o: BenchOptions) => runBench(o));
}

/** Hidden: one measurement in this process (spawned by bench). */
export function benchWorkerCommand(): Command {
  return new Command('bench-worker')
    .argument('<workload>')
    .argument('<arg>')
    .requiredOption('--threads <n>', 'threads', int)
    .requiredOption('--backend <name>', 'backend')
    .requiredOption('--steps <n>', 'steps', int)
    .option('--text <file>', 'training text (recipe)')
    .option('--precision <p>', 'train: fp32 or bf16', 'fp32')
    .option('--recompute', 'train: recompute each block in the backward pass')
    .action((workload: string, arg: string, o: { threads: number; backend: string; steps: number; text?: string; precision: string; recompute?: boolean }) => {
      const { backend: be } = useBackend({ backend: o.backend, threads: o.threads });
      const row =
        workload === 'train' ? benchTrainStep(arg, o.steps, { precision: o.precision === 'bf16' ? 'bf16' : 'fp32', recompute: Boolean(o.recompute) })
        : workload === 'lora' ? benchLoRAStep(arg as LoRAMode, o.steps)
        : workload === 'decode' ? benchDecode(arg, o.steps)
        : workload === 'prefill' ? benchPrefill(arg, o.steps)
        : workload === 'skinny' ? benchSkinny(Number(arg), o.steps)
        : workload === 'recipe' ? benchRecipe(o.text ?? SHAKESPEARE, Number(arg), { precision: o.precision === 'bf16' ? 'bf16' : 'fp32' })
        : benchGemm(Number(arg), o.steps);
      const rss = process.resourceUsage().maxRSS / 1024;
      console.log(JSON.stringify({ ...row, backend: be.name, threads: o.threads, max_rss_mb: rss }));
    });
}
