import { backend } from '../backend/index.js';
import { gemmArgs, mat, matT } from '../backend/gemm_args.js';
import { GPT } from '../models/gpt.js';
import { parseGPTConfig } from '../models/gpt_config.js';
import { AdamW } from '../optim/adamw.js';
import { nextTokenObjective } from '../train/next_token.js';
import { trainStep } from '../train/step.js';
import { Rng } from '../util/rng.js';
import { withPrecision } from '../tensor/precision.js';
import { BENCH_CONFIGS, median, type TrainMode } from './configs.js';

export type Row = Record<string, string | number | boolean | null>;

/**
 * One full training step (forward, backward, clip, AdamW: the trainers'
 * own trainStep) on random tokens, repeated; the median step after `warmup` steps gives tokens/s.
 */
export function benchTrainStep(config: string, steps: number, mode: TrainMode = { precision: 'fp32', recompute: false }, warmup = 2): Row {
  const { model, opt, objective: nextToken, batch, n } = trainBenchSetup(config, mode.recompute);
  const objective = { loss: (b: { x: Int32Array; y: Int32Array }) => withPrecision(mode.precision, () => nextToken.loss(b)) };
  const times: number[] = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t0 = performance.now();
    trainStep(opt, objective, [batch], { lr: 1e-3, gradClip: 1 });
    if (i >= warmup) times.push(performance.now() - t0);
  }
  const ms = median(times);
  return { workload: 'train', config, precision: mode.precision, recompute: mode.recompute, tokens_per_s: (n / ms) * 1000, step_ms: ms, params: model.numParameters() };
}

/** A bench config's GPT, its AdamW, the next-token objective and one batch of n random tokens (every backend's train bench). */
export function trainBenchSetup(config: string, recompute = false) {
  const c = BENCH_CONFIGS[config];
  if (!c) throw new Error(`unknown config ${config}`);
  const cfg = parseGPTConfig(c.model);
  const model = new GPT(cfg, new Rng(1));
  model.recompute = recompute;
  const opt = new AdamW(model.namedParameters(), { lr: 1e-3, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.1 });
  const rng = new Rng(2);
  const n = c.batch * cfg.block_size;
  const x = Int32Array.from({ length: n }, () => rng.int(cfg.vocab_size));
  const y = Int32Array.from({ length: n }, () => rng.int(cfg.vocab_size));
  return { model, opt, objective: nextTokenObjective(model, cfg.block_size), batch: { x, y }, n };
}

/** C = A·B for square n×n float32 matrices; GFLOP/s from the median of `reps`. */
export function benchGemm(n: number, reps: number): Row {
  const rng = new Rng(3);
  const a = Float32Array.from({ length: n * n }, () => rng.random());
  const b = Float32Array.from({ length: n * n }, () => rng.random());
  const c = new Float32Array(n * n);
  const g = gemmArgs({ M: n, N: n, K: n }, mat(c, n), mat(a, n), mat(b, n)); // C = A·B
  const be = backend();
  be.gemm(g);
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    be.gemm(g);
    times.push(performance.now() - t0);
  }
  return { workload: 'gemm', n, gflops: (2 * n ** 3) / (median(times) / 1000) / 1e9 };
}

/**
 * y = x·Wᵀ for `rows` activation rows against GPT-2 124M's c_attn weight
 * [2304, 768]: a decoding step's product. Eight weight copies are used in
 * turn (56 MB) so that, as in decoding, the weights come from memory and not
 * from the cache. GFLOP/s from the median of `reps`.
 */
export function benchSkinny(rows: number, reps: number): Row {
  const [N, K] = [2304, 768];
  const rng = new Rng(4);
  const x = Float32Array.from({ length: rows * K }, () => rng.random() - 0.5);
  const ws = Array.from({ length: 8 }, () => Float32Array.from({ length: N * K }, () => rng.random() - 0.5));
  const y = new Float32Array(rows * N);
  const be = backend();
  const times: number[] = [];
  for (let r = 0; r < reps + ws.length; r++) {
    const t0 = performance.now();
    be.gemm(gemmArgs({ M: rows, N, K }, mat(y, N), mat(x, K), matT(ws[r % ws.length]!, K))); // y = x·Wᵀ
    if (r >= ws.length) times.push(performance.now() - t0); // the first pass over the copies is warm-up
  }
  return { workload: 'skinny', rows, gflops: (2 * rows * N * K) / (median(times) / 1000) / 1e9 };
}
