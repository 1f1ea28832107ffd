import { backend } from '../backend/index.js';
import { linear } from '../tensor/ops/linear.js';
import { Tensor } from '../tensor/tensor.js';

/**
 * y = x·Wᵀ + b for a few rows (a continuous batch: one row per sequence),
 * inference only. Up to GEMV_ROWS rows the backend's GEMV reads W from
 * memory once for all of them, which wins. Past that, two products compete
 * and neither wins everywhere: the blocked GEMM packs W into panels first
 * (compute-bound, but the packing costs about as much as a GEMV), and
 * computing (W·xᵀ)ᵀ instead puts W on the side the GEMM packs block by block
 * into cache. Which is faster depends on the shape, the CPU and its caches,
 * so each (shape, batch size class) times both on its first real calls and
 * keeps the better. Both compute the same product; only the summation order
 * differs.
 */
const GEMV_ROWS = 16; // the native backend's GEMV_MAX_M

type Strategy = 'gemm' | 'transposed';

const STRATEGIES: Strategy[] = ['gemm', 'transposed'];
/** Timed calls per strategy before choosing (the minimum is kept: robust to a busy machine). */
const TRIALS = 2;

interface Tuning {
  best: Strategy | null;
  times: Map<Strategy, number>;
  calls: number;
}

const tunings = new Map<string, Tuning>();

/** Batch sizes in classes 17–32, 33–64, …: the best strategy changes slowly with the row count. */
const sizeClass = (rows: number): number => 2 ** Math.ceil(Math.log2(rows));

export function skinnyLinear(x: Tensor, weight: Tensor, bias: Tensor | null): Tensor {
  const [N, K] = weight.shape as [number, number];
  const rows = x.size / K;
  if (rows <= GEMV_ROWS) return linear(x, weight, bias); // the GEMV path, one pass over W
  const key = `${N}x${K}@${sizeClass(rows)}`;
  let t = tunings.get(key);
  if (!t) tunings.set(key, (t = { best: null, times: new Map(), calls: 0 }));
  const strategy = t.best ?? STRATEGIES[t.calls % STRATEGIES.length]!;
  const t0 = performance.now();
  const out = run(strategy, x, weight, bias, rows, N, K);
  if (!t.best) {
    const ms = performance.now() - t0;
    t.times.set(strategy, Math.min(ms, t.times.get(strategy) ?? Infinity));
    if (++t.calls >= TRIALS * STRATEGIES.length) t.best = [...t.times.entries()].reduce((a, b) => (b[1] < a[1] ? b : a))[0];
  }
  return out;
}

const BASE = { aOffset: 0, bOffset: 0, cOffset: 0, alpha: 1, accumulate: false, batch: 1, strideA: 0, strideB: 0, strideC: 0 } as const;

function run(s: Strategy, x: Tensor, weight: Tensor, bias: Tensor | null, rows: number, N: number, K: number): Tensor {
  if (s === 'gemm') return linear(x, weight, bias);
  const out = Tensor.zeros([...x.shape.slice(0, -1), N]);
  const be = backend();
  // (W·xᵀ) is [N, rows]: transpose it into place and add the bias on the way.
  const t = new Float32Array(N * rows);
  be.gemm({ ...BASE, transA: false, transB: true, M: N, N: rows, K, a: weight.data, lda: K, b: x.data, ldb: K, c: t, ldc: rows, bias: null });
  const o = out.data;
  const b = bias?.data;
  for (let n = 0; n < N; n++) {
    const bn = b ? b[n]! : 0;
    for (let r = 0; r < rows; r++) o[r * N + n] = t[n * rows + r]! + bn;
  }
  return out;
}

/** The strategy chosen per `NxK@rows` so far (for benchmarks and profiles). */
export function skinnyLinearChoices(): Record<string, Strategy> {
  const out: Record<string, Strategy> = {};
  for (const [key, t] of tunings) if (t.best) out[key] = t.best;
  return out;
}
