import { backend } from '../backend/index.js';
import { quantizeMatrix, type QuantizedMatrix } from '../backend/quantized_matrix.js';
import { quantizeRows } from '../nn/quantized_linear.js';
import { Rng } from '../util/rng.js';
import { median } from './configs.js';
import type { Row } from './workloads.js';

/** SmolLM2-135M's matrices as [K → N]: attention/MLP projections and the 49 152-token head. */
export const QUANT_SHAPES: ReadonlyArray<readonly [K: number, N: number]> = [[576, 1536], [1536, 576], [576, 576], [576, 49152]];
export const QUANT_TYPES = ['f32', 'int8', 'q8_0', 'q4_0'] as const;
/** 1 row: a decoding step; 256 rows: a prompt's prefill. */
export const QUANT_ROWS = [1, 256];

/** Weights are read from memory, not cache: enough copies of each matrix to pass 64 MB. */
const STREAM_BYTES = 64 << 20;

type Weight = { bytes: number; run: (x: Float32Array, rows: number, y: Float32Array) => void; copy: () => Weight };

function makeWeight(type: (typeof QUANT_TYPES)[number], w: Float32Array, N: number, K: number): Weight {
  const be = backend();
  if (type === 'f32') {
    return {
      bytes: N * K * 4,
      run: (x, rows, y) => be.gemm({ transA: false, transB: true, M: rows, N, K, a: x, aOffset: 0, lda: K, b: w, bOffset: 0, ldb: K, c: y, cOffset: 0, ldc: N, alpha: 1, accumulate: false, batch: 1, strideA: 0, strideB: 0, strideC: 0 }),
      copy: () => makeWeight(type, w.slice(), N, K),
    };
  }
  if (type === 'int8') return int8Weight(quantizeRows(w, N, K), N, K);
  return quantWeight(quantizeMatrix(type, w, N, K));
}

function int8Weight(q: { data: Int8Array; scale: Float32Array }, N: number, K: number): Weight {
  return {
    bytes: N * K + N * 4,
    run: (x, rows, y) => backend().linearInt8(x, rows, K, q.data, q.scale, null, y, N),
    copy: () => int8Weight({ data: q.data.slice(), scale: q.scale.slice() }, N, K),
  };
}

function quantWeight(q: QuantizedMatrix): Weight {
  return { bytes: q.data.length, run: (x, rows, y) => backend().linearQuantized(x, rows, q, null, y), copy: () => quantWeight({ ...q, data: q.data.slice() }) };
}

/**
 * Memory read bandwidth: the better of libc's memcmp over two equal 128 MB
 * buffers and a one-row fp32 x·Wᵀ over a 256 MB matrix (a streaming sum of
 * products, on the current threads), best of 3 after a warm-up each.
 */
export function measureBandwidth(): { gbPerS: number; how: string } {
  const best = (fn: () => void) => {
    let t = Infinity;
    for (let r = 0; r < 4; r++) {
      const t0 = performance.now();
      fn();
      if (r > 0) t = Math.min(t, performance.now() - t0);
    }
    return t / 1000;
  };
  const a = Buffer.alloc(128 << 20, 1);
  const b = Buffer.alloc(128 << 20, 1);
  const cmp = (a.length + b.length) / best(() => a.compare(b)) / 1e9;
  const [N, K] = [65536, 1024];
  const w = new Float32Array(N * K).fill(0.5);
  const x = new Float32Array(K).fill(1);
  const y = new Float32Array(N);
  const be = backend();
  const gemv = w.byteLength / best(() => be.gemm({ transA: false, transB: true, M: 1, N, K, a: x, aOffset: 0, lda: K, b: w, bOffset: 0, ldb: K, c: y, cOffset: 0, ldc: N, alpha: 1, accumulate: false, batch: 1, strideA: 0, strideB: 0, strideC: 0 })) / 1e9;
  return gemv > cmp ? { gbPerS: gemv, how: 'fp32 x·Wᵀ over 256 MB' } : { gbPerS: cmp, how: 'memcmp of 2 × 128 MB' };
}

/**
 * x·Wᵀ at one shape, type and row count: the median time, weight bytes read
 * per second (each call reads W once) and GFLOP/s.
 */
export function benchQuant(K: number, N: number, type: (typeof QUANT_TYPES)[number], rows: number, reps: number): Row {
  const rng = new Rng(11);
  const base = Float32Array.from({ length: N * K }, () => rng.normal() * 0.05);
  const first = makeWeight(type, base, N, K);
  // Copies with the same values: each call reads a matrix the previous calls did not leave in cache.
  const copies = rows === 1 ? Math.max(1, Math.ceil(STREAM_BYTES / first.bytes)) : 1;
  const ws = [first, ...Array.from({ length: copies - 1 }, () => first.copy())];
  const x = Float32Array.from({ length: rows * K }, () => rng.normal());
  const y = new Float32Array(rows * N);
  const times: number[] = [];
  const cpu: number[] = [];
  for (let r = 0; r < reps + ws.length; r++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    ws[r % ws.length]!.run(x, rows, y);
    const t = performance.now() - t0;
    const c = process.cpuUsage(c0);
    if (r >= ws.length) { times.push(t); cpu.push((c.user + c.system) / 1000); }
  }
  const s = median(times) / 1000;
  // CPU time per call as well: on a shared machine a long call is often descheduled, and with one thread its CPU time is the kernel's.
  return { workload: 'quant', shape: `${K}x${N}`, type, rows, ms: s * 1000, cpu_ms: median(cpu), weight_gb_per_s: first.bytes / s / 1e9, gflops: (2 * rows * N * K) / s / 1e9, weight_mb: first.bytes / 2 ** 20 };
}
