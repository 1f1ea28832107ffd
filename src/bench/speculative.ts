import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadAddon } from '../backend/native/index.js';
import { batchForward } from '../generate/batch_step.js';
import { generate } from '../generate/engine.js';
import { KVCache } from '../generate/kv_cache.js';
import { generateSpeculative, SpeculativeStats } from '../generate/speculative.js';
import { loadGPT } from '../io/model_dir.js';
import { readTextFile } from '../io/read_text.js';
import type { GPT } from '../models/gpt.js';
import { packForDecoding } from '../nn/panel_linear.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { parseTrainOptions, type TrainOptionsInput } from '../train/options.js';
import { train } from '../train/trainer.js';
import { UserError } from '../util/errors.js';
import { median } from './configs.js';
import type { Row } from './workloads.js';

/**
 * Issue #21's speculative-decoding goal: a 12-layer target and a 2-layer
 * draft distilled from it (same characters, same data, same steps), batch-1
 * greedy decoding with and without the draft. The pair is trained once and
 * kept under the cache directory (training a 12-layer model is minutes on
 * two cores); the bench itself measures decoding only.
 *
 * Two targets, named by width. The 128-wide one (9.4 MB of weights) is what
 * the bench measured first: its decode step is mostly per-op overhead, so a
 * verifying pass over k + 1 rows costs nearly twice a step and the draft, at
 * the same width, costs 1/6 of a step. Speculative decoding is for the regime
 * where a step is bound by reading the weights: the 384-wide target (85 MB,
 * far past the caches) is that regime, and its draft stays 128 wide (2 layers:
 * 1/40 of a step). Both shapes are named in every row of the bench's output.
 */
export const SPECULATIVE_PAIRS: Record<string, Record<'target' | 'draft', TrainOptionsInput>> = {
  '128': {
    target: { nLayer: 12, nHead: 4, nEmbd: 128, blockSize: 128, batchSize: 12, maxIters: 600, evalInterval: 600, seed: 1337 },
    draft: { nLayer: 2, nHead: 4, nEmbd: 128, blockSize: 128, batchSize: 12, maxIters: 600, evalInterval: 600, seed: 1337 },
  },
  '384': {
    target: { nLayer: 12, nHead: 6, nEmbd: 384, blockSize: 128, batchSize: 12, maxIters: 600, evalInterval: 600, seed: 1337 },
    draft: { nLayer: 2, nHead: 4, nEmbd: 128, blockSize: 128, batchSize: 12, maxIters: 600, evalInterval: 600, seed: 1337 },
  },
};

/** "12L×384": a model's depth and width, as the bench's rows name them. */
const shapeName = (o: TrainOptionsInput) => `${o.nLayer}L×${o.nEmbd}`;

export interface SpeculativeBenchOptions {
  /** Where the trained pair is kept between runs. */
  cacheDir: string;
  /** The target's width: a key of SPECULATIVE_PAIRS ("128" or "384"). */
  width: string;
  /**
   * Keep the target's weights in column panels too (nn/panel_linear.ts; default
   * true), for the target alone and with the draft alike: a verifying pass of
   * k + 1 rows then reads the weights at about one step's cost.
   */
  panels?: boolean;
  /** The draft's width (default: the pair's, 128); its 2 layers and 4 heads stay. */
  draftWidth?: number;
  /** Draft lengths to measure, side by side. */
  ks: DraftK[];
  /** New tokens per prompt. */
  tokens: number;
  /** Timed rounds (each: every prompt with the target alone, then with the draft). */
  reps: number;
  /** Native threads to decode with (default: as set); the pair, when not cached, trains on every core first. */
  threads?: number;
  /** Training steps for each model when the pair is not cached (overrides the pair's 600). */
  maxIters?: number;
  /** Distil the draft from the target (default), or train it beside the target on the text alone (false). */
  distill?: boolean;
  log?: (line: string) => void;
}

interface Trained {
  model: GPT;
  tokenizer: Tokenizer;
  trainSeconds: number;
  /** Where it is cached: a distilled model's key includes its teacher's. */
  dir: string;
}

/**
 * The trained model for `options`, from the cache or trained now (written
 * under a temporary name, then renamed); with a teacher, distilled from it
 * (train/distill.ts) instead of trained on the text's next tokens alone.
 */
function trainedModel(textPath: string, text: string, cacheDir: string, options: TrainOptionsInput, log: (l: string) => void, teacher?: Trained): Trained {
  const hash = createHash('sha256').update(JSON.stringify(options)).update(text);
  if (teacher) hash.update(`distilled from ${teacher.dir}`);
  const key = hash.digest('hex').slice(0, 16);
  const dir = join(cacheDir, `speculative-${options.nLayer}L${teacher ? '-distilled' : ''}-${key}`);
  let trainSeconds = 0;
  if (!existsSync(join(dir, 'config.json'))) {
    mkdirSync(cacheDir, { recursive: true });
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    log(`speculative: ${teacher ? 'distilling' : 'training'} the ${options.nLayer}-layer model (${options.maxIters} steps; kept in ${dir})`);
    const t0 = performance.now();
    train({ text, dataPath: textPath, options: parseTrainOptions(options), out: tmp, ...(teacher ? { teacher: { model: teacher.model, tokenizer: teacher.tokenizer } } : {}) });
    trainSeconds = (performance.now() - t0) / 1000;
    renameSync(tmp, dir);
  }
  const { model, tokenizer } = loadGPT(dir, 'attn bench');
  return { model: model.eval(), tokenizer: tokenizer!, trainSeconds, dir };
}

/** f(), adding its wall and CPU milliseconds to `into`. */
function timed<T>(into: { wall: number; cpu: number }, f: () => T): T {
  const [t0, c0] = [performance.now(), process.cpuUsage()];
  const out = f();
  const c = process.cpuUsage(c0);
  into.wall += performance.now() - t0;
  into.cpu += (c.user + c.system) / 1000;
  return out;
}

/**
 * What one round is made of, in CPU milliseconds (medians of `reps`
 * interleaved measurements, each the mean of 20 passes): a decode step of the
 * target (one row through its KV cache: what the target alone pays per
 * token), its verifying pass over `rows` = k + 1 new positions, and a decode
 * step of the draft. With t tokens per target pass and k drafts per round,
 * the speed-up is at most t · step / (k · draft + verify): the figure the
 * machine's noise cannot move, since each part is timed on its own.
 */
export function passCosts(target: GPT, draft: GPT, prompt: readonly number[], rows: number, reps = 9): { step: number; verify: number; draft: number } {
  const passes = 20;
  const cpuMs = (f: () => void) => {
    const c0 = process.cpuUsage();
    for (let i = 0; i < passes; i++) f();
    const c = process.cpuUsage(c0);
    return (c.user + c.system) / 1000 / passes;
  };
  // One pass of `n` new positions after the prompt, then the cache cut back to the prompt.
  const pass = (model: GPT, n: number) => {
    const cache = new KVCache(model.config, 1, prompt.length + n);
    batchForward(model, [Int32Array.from(prompt)], [cache]);
    const ids = Int32Array.from({ length: n }, (_, i) => prompt[i % prompt.length]!);
    return () => {
      batchForward(model, [ids], [cache], undefined, [n]);
      cache.truncate(prompt.length);
    };
  };
  const [step, verify, small] = [pass(target, 1), pass(target, rows), pass(draft, 1)];
  const out = { step: [] as number[], verify: [] as number[], draft: [] as number[] };
  for (let r = 0; r <= reps; r++) {
    const times = [cpuMs(step), cpuMs(verify), cpuMs(small)];
    if (r === 0) continue; // warm-up
    out.step.push(times[0]!);
    out.verify.push(times[1]!);
    out.draft.push(times[2]!);
  }
  return { step: median(out.step), verify: median(out.verify), draft: median(out.draft) };
}

/** A draft length to measure: tokens per round, or adaptive with at most `max` (generate/draft_length.ts). */
export type DraftK = number | { auto: true; max: number };

const kName = (k: DraftK) => (typeof k === 'number' ? String(k) : `auto≤${k.max}`);

/**
 * Decoding with and without the draft, interleaved per prompt so that every
 * variant sees the same machine load: each timed round runs every prompt with
 * the target alone, then with the draft at each draft length in `o.ks`
 * (round 0 warms up). One row per draft length, with the target alone's
 * median beside it.
 */
export function benchSpeculative(textPath: string, o: SpeculativeBenchOptions): Row[] {
  const log = o.log ?? (() => {});
  const text = readTextFile(textPath);
  const iters = o.maxIters === undefined ? {} : { maxIters: o.maxIters };
  const pair = SPECULATIVE_PAIRS[o.width];
  if (!pair) throw new UserError(`speculative bench: no target of width ${o.width} (${Object.keys(SPECULATIVE_PAIRS).join(', ')})`);
  const target = trainedModel(textPath, text, o.cacheDir, { ...pair.target, ...iters }, log);
  const draftShape = { ...pair.draft, ...iters, ...(o.draftWidth === undefined ? {} : { nEmbd: o.draftWidth }) };
  const draft = trainedModel(textPath, text, o.cacheDir, draftShape, log, o.distill === false ? undefined : target);
  if (o.panels !== false) packForDecoding(target.model);
  const addon = o.threads === undefined ? null : loadAddon();
  const cores = addon?.threads();
  addon?.setThreads(o.threads!);
  try {
    return sideBySide(text, target, draft, { target: pair.target, draft: draftShape }, o);
  } finally {
    if (addon) addon.setThreads(cores!); // a next pair trains on every core again
  }
}

/** benchSpeculative's measurement, once the pair is trained. */
function sideBySide(text: string, target: Trained, draft: Trained, pair: Record<'target' | 'draft', TrainOptionsInput>, o: SpeculativeBenchOptions): Row[] {
  const tokenizer = target.tokenizer;
  // Prompts from the validation split (the last 10 % of the text, as attn train splits it).
  const val = text.slice(Math.floor(text.length * 0.9));
  const prompts = [0, 1, 2, 3].map((i) => Array.from(tokenizer.encode(val.slice(i * 4001, i * 4001 + 24))));
  const maxK = Math.max(...o.ks.map((k) => (typeof k === 'number' ? k : k.max)));
  const tokens = Math.min(o.tokens, target.model.config.block_size - 24 - maxK - 1);
  const plain = { wall: [] as number[], cpu: [] as number[] };
  const variants = o.ks.map((k) => ({ k, wall: [] as number[], cpu: [] as number[], stats: new SpeculativeStats(), identical: true }));
  for (let r = 0; r <= o.reps; r++) {
    const round = { wall: 0, cpu: 0 };
    const fast = variants.map(() => ({ wall: 0, cpu: 0 }));
    for (const p of prompts) {
      const want = timed(round, () => [...generate(target.model, p, { maxNewTokens: tokens, greedy: true })]);
      variants.forEach((v, i) => {
        const k = typeof v.k === 'number' ? { k: v.k } : { k: v.k.max, adaptiveK: true };
        const got = timed(fast[i]!, () => [...generateSpeculative(target.model, p, { maxNewTokens: tokens, greedy: true, draft: draft.model, ...k, ...(r > 0 ? { stats: v.stats } : {}) })]);
        if (got.join(',') !== want.join(',')) v.identical = false;
      });
    }
    if (r > 0) {
      plain.wall.push(round.wall);
      plain.cpu.push(round.cpu);
      variants.forEach((v, i) => {
        v.wall.push(fast[i]!.wall);
        v.cpu.push(fast[i]!.cpu);
      });
    }
  }
  const n = prompts.length * tokens;
  const plainTps = (n / median(plain.wall)) * 1000;
  // The ratio of each timed round's two times, then their median: a round's load is shared by both.
  const paired = (alone: number[], fast: number[]) => median(alone.map((a, r) => a / fast[r]!));
  // The parts are timed halfway through a row: the prompt and half the new tokens cached.
  const midway = Array.from(tokenizer.encode(val.slice(0, 24 + (tokens >> 1))));
  return variants.map((v) => {
    const fastTps = (n / median(v.wall)) * 1000;
    const s = v.stats;
    const k = s.rounds === 0 ? 0 : s.drafted / s.rounds; // drafts per round (fewer near the end of a row)
    const costs = passCosts(target.model, draft.model, midway, Math.max(1, Math.round(k)) + 1);
    return {
      workload: 'speculative',
      config: `target ${shapeName(pair.target)}/draft ${shapeName(pair.draft)}${o.distill === false ? '' : ' distilled'}, chars`,
      target_shape: shapeName(pair.target),
      target_panels: o.panels !== false,
      draft_shape: shapeName(pair.draft),
      k: kName(v.k),
      tokens_per_s: fastTps,
      target_alone_tokens_per_s: plainTps,
      // Medians over the timed rounds of (target alone's time / time with the draft), each round's
      // two times taken side by side, prompt by prompt.
      speedup: paired(plain.wall, v.wall),
      // The same by CPU time (the process's user + system seconds): on a machine shared with
      // other work, wall time also counts the moments this process waited for a core.
      speedup_cpu: paired(plain.cpu, v.cpu),
      // A round's parts timed on their own (passCosts, CPU ms) and the speed-up they predict.
      target_step_ms_cpu: costs.step,
      verify_pass_ms_cpu: costs.verify,
      draft_step_ms_cpu: costs.draft,
      speedup_predicted: (s.tokensPerTargetPass * costs.step) / (k * costs.draft + costs.verify),
      acceptance_rate: s.acceptanceRate,
      // Of the rounds that proposed a j-th draft, the share that kept it (j = 1, 2, …).
      acceptance_by_position: s.draftedAt.map((d, j) => ((s.acceptedAt[j] ?? 0) / d).toFixed(3)).join(' '),
      tokens_per_target_pass: s.tokensPerTargetPass,
      // Where the decoding time with the draft went, per emitted token.
      draft_ms_per_token: (1000 * s.draftSeconds) / s.emitted,
      verify_ms_per_token: (1000 * s.targetSeconds) / s.emitted,
      identical_tokens: v.identical,
      train_seconds: target.trainSeconds + draft.trainSeconds,
    };
  });
}
