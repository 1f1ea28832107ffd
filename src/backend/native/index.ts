import { createRequire } from 'node:module';
import type { AttentionDims, Backend, GemmArgs } from '../backend.js';
import { applyGemmEpilogue, applyRowsEpilogue } from '../gemm_epilogue.js';
import { storeFresh, storeFreshRagged } from '../js/attention_cached.js';
import { storeFreshPaged } from '../js/attention_paged.js';
import { isSuffix } from '../js/elementwise.js';
import { jsBackend } from '../js/index.js';
import { canInterleave, GGML_TYPE, INTERLEAVE, quantRowBytes, type QuantizedMatrix } from '../quantized_matrix.js';
import { nativeDecoderSteps } from './decoder_step.js';
import { ROW_PANEL } from '../row_panels.js';

/** The compiled addon (native/src/addon.cc). */
export interface Addon {
  gemm(...args: unknown[]): void;
  layerNormForward(...args: unknown[]): void;
  layerNormBackward(...args: unknown[]): void;
  rmsNormForward(x: Float32Array, w: Float32Array | null, out: Float32Array, rstd: Float32Array, rows: number, cols: number, eps: number): void;
  rmsNormBackward(x: Float32Array, w: Float32Array | null, rstd: Float32Array, dy: Float32Array, dx: Float32Array, dw: Float32Array | null, rows: number, cols: number, accumulate: boolean): void;
  siluForward(x: Float32Array, out: Float32Array): void;
  siluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, accumulate: boolean): void;
  swigluForward(gate: Float32Array, up: Float32Array, out: Float32Array): void;
  swigluBackward(gate: Float32Array, up: Float32Array, dy: Float32Array, dGate: Float32Array | null, dUp: Float32Array | null, accGate: boolean, accUp: boolean): void;
  geluForward(x: Float32Array, out: Float32Array): void;
  geluBackward(x: Float32Array, dy: Float32Array, dx: Float32Array, accumulate: boolean): void;
  softmaxForward(x: Float32Array, out: Float32Array, rows: number, cols: number): void;
  crossEntropyForward(logits: Float32Array, targets: Int32Array, lse: Float32Array, rows: number, vocab: number, ignore: number): [number, number];
  crossEntropyBackward(...args: unknown[]): void;
  embeddingForward(w: Float32Array, ids: Int32Array, out: Float32Array, dim: number): void;
  embeddingBackward(d: Float32Array, ids: Int32Array, dw: Float32Array, dim: number): void;
  attentionForward(...args: unknown[]): void;
  attentionBackward(...args: unknown[]): void;
  attentionCached(...args: unknown[]): void;
  attentionCachedRagged(q: Float32Array, out: Float32Array, ks: Float32Array[], vs: Float32Array[], meta: Int32Array, H: number, Hkv: number, D: number, scale: number): void;
  attentionPaged(q: Float32Array, out: Float32Array, kPool: Float32Array, vPool: Float32Array, tables: Int32Array, meta: Int32Array, blockTokens: number, H: number, Hkv: number, D: number, scale: number): void;
  /** Undefined where the memory could not be mapped. */
  hugePageBuffer(bytes: number): ArrayBuffer | undefined;
  linear(x: Float32Array, w: Float32Array, bias: Float32Array | null, y: Float32Array, M: number, N: number, K: number): void;
  linearInt8(x: Float32Array, M: number, K: number, w: Int8Array, scale: Float32Array, bias: Float32Array | null, out: Float32Array, N: number): void;
  /** Column panels: backend/panels.ts. */
  linearPanels(x: Float32Array, M: number, K: number, panels: Float32Array, bias: Float32Array | null, y: Float32Array, N: number): void;
  /** Nearest rows with the selection fused (native/src/row_top.h); data: fp32 or int8 row panels. */
  topRows(q: Float32Array, n: number, width: number, data: Float32Array | Int8Array, scale: Float32Array | null, k: number, rows: Int32Array, scores: Float32Array): number;
  topRowsOf(q: Float32Array, m: Float32Array, width: number, candidates: Int32Array, count: number, k: number, rows: Int32Array, scores: Float32Array): number;
  /** interleave: 0 (ggml's layout) or 16 (QuantizedMatrix's 'rows16'). */
  linearQuantized(x: Float32Array, M: number, type: number, w: Uint8Array, N: number, K: number, bias: Float32Array | null, y: Float32Array, interleave?: number): void;
  /** Rewrites a q4_0/q8_0 matrix of 16·n rows in place into the 'rows16' layout. */
  interleaveQuantRows(type: number, w: Uint8Array, N: number, K: number): void;
  /** Whether the current ISA's quantized kernels run faster on 'rows16' matrices (AVX-512 VNNI). */
  prefersInterleaved(): boolean;
  /**
   * Reads every byte once on the pool's threads (a memory bandwidth probe); returns their XOR fold.
   * timing (4 values per pool thread): for slice t, the thread that read it, its start and end (ns
   * after the call began) and that thread's CPU ns for it.
   */
  streamRead(bytes: Uint8Array, timing?: Float64Array): number;
  adamw(...args: unknown[]): void;
  rope(x: Float32Array, out: Float32Array, cos: Float32Array, sin: Float32Array, B: number, T: number, H: number, D: number, half: boolean, perRow: boolean, direction: number, accumulate: boolean): void;
  /** decoder_step.h: a layer's pointers gathered once (ints and arrays as addon.cc's decoderLayerPrepare lists them). */
  decoderLayerPrepare(ints: Int32Array, arrays: Array<Float32Array | Int8Array | Uint8Array | null>, eps: number): unknown;
  decoderLayerStep(plan: unknown, x: Float32Array, kc: Float32Array, vc: Float32Array, cap: number, past: number, start: number, cos: Float32Array, sin: Float32Array, scratch: Float32Array): void;
  /** decoder_step.h's DecoderHead: ints [kind, N, K, interleave], arrays [norm, w, scale|null, bias|null]. */
  decoderHeadPrepare(ints: Int32Array, arrays: Array<Float32Array | Int8Array | Uint8Array | null>, eps: number): unknown;
  decoderStepScratch(plan: unknown): number;
  /** decoder_step.h, set_decode_trace: where decoderLayersStep's time goes, added into `out` (2 + 20 per task values); null: off. */
  decoderTrace(out: Float64Array | null): void;
  /** addon.cc: the layer plans and caches of the backend's decoderLayersStep gathered once (the caller keeps them alive as long as the handle). */
  decoderStackPrepare(plans: unknown[], kcs: Float32Array[], vcs: Float32Array[]): unknown;
  /** decoder_step.h's decoder_layers_step on a prepared stack: false (nothing done) unless its layers share the first one's sizes and types. */
  decoderStackStep(stack: unknown, x: Float32Array, cap: number, past: number, start: number, cos: Float32Array, sin: Float32Array, scratch: Float32Array, head?: unknown, logits?: Float32Array): boolean;
  /** decoder_step.h, argmax_rows: the js backend's argmaxRows (first index of each row's largest value, as a float), in AVX-512. */
  argmaxRows(x: Float32Array, rows: number, cols: number, out: Float32Array): void;
  dropoutForward(x: Float32Array, out: Float32Array, mask: Float32Array, p: number, seed: number): void;
  dropoutBackward(dOut: Float32Array, mask: Float32Array, dx: Float32Array, accumulate: boolean): void;
  sumSquares(x: Float32Array): number;
  scaleInPlace(x: Float32Array, s: number): void;
  add(a: Float32Array, b: Float32Array, out: Float32Array): void;
  addRows(a: Float32Array, b: Float32Array, out: Float32Array, rows: number, cols: number): void;
  colSumAdd(src: Float32Array, rows: number, cols: number, dst: Float32Array): void;
  setThreads(n: number): void;
  threads(): number;
  isa(): string;
  detectedIsa(): string;
  setIsa(name: string): boolean;
  /** Whether bf16 products run on AVX-512 BF16's vdpbf16ps now (else FP32 FMA on rounded operands). */
  bf16Dot(): boolean;
  cpuHasBf16(): boolean;
  /** false if the CPU lacks AVX-512 BF16. */
  setBf16Dot(on: boolean): boolean;
}

let addon: Addon | null = null;
let loadError: string | null = null;

/** Load build/Release/attn_native.node (built by node-gyp during npm install); null if it is not there. */
export function loadAddon(): Addon | null {
  if (addon || loadError) return addon;
  try {
    const require = createRequire(import.meta.url);
    // dist/src/backend/native/index.js → repository root
    addon = require('../../../../build/Release/attn_native.node') as Addon;
  } catch (e) {
    loadError = (e as Error).message.split('\n')[0] ?? 'unknown error';
  }
  return addon;
}

export function nativeLoadError(): string | null {
  return loadError;
}

/** y = x·Wᵀ (+ bias) on whole, contiguous arrays: a Linear layer's forward, sent with fewer arguments. */
function isPlainLinear(g: GemmArgs<Float32Array>): boolean {
  return !g.bf16 && !g.transA && g.transB && g.batch === 1 && g.alpha === 1 && !g.accumulate && g.aOffset === 0 && g.bOffset === 0 && g.cOffset === 0 &&
    g.lda === g.K && g.ldb === g.K && g.ldc === g.N;
}

/** The 13 trailing arguments of the addon's attention calls (native/src/addon.cc, Dims). */
const dimsArgs = (d: AttentionDims) =>
  [d.B, d.Tq, d.Tk, d.nHead, d.nKvHead, d.headDim, d.causal, d.scale, d.qStride ?? 0, d.kvStride ?? 0, d.keyPadding ?? null, d.dropout?.p ?? 0, (d.dropout?.seed ?? 0) >>> 0, d.bf16 ?? false] as const;

/**
 * The native backend: C++ kernels with SIMD (AVX-512, AVX2+FMA or portable,
 * chosen at run time) on a persistent thread pool. Ops it does not accelerate
 * fall through to the js backend.
 */
/**
 * The first product on an AVX-512 VNNI CPU reorders a q4_0/q8_0 matrix in place into 16-row
 * groups (quantized_matrix.ts, 'rows16'): decoding then streams it with no shuffles. Once.
 */
export function interleaveOnce(a: Addon, w: QuantizedMatrix): void {
  if ((w.layout ?? 'ggml') === 'ggml' && canInterleave(w) && a.prefersInterleaved()) {
    a.interleaveQuantRows(GGML_TYPE[w.type], w.data, w.rows, w.cols);
    w.layout = 'rows16';
  }
}

export function createNativeBackend(a: Addon): Backend<Float32Array> {
  const b: Backend<Float32Array> = {
    ...jsBackend,
    name: 'native',
    gemm: (g) => {
      if (isPlainLinear(g)) a.linear(g.a, g.b, g.bias ?? null, g.c, g.M, g.N, g.K);
      else a.gemm(g.transA, g.transB, g.M, g.N, g.K, g.a, g.aOffset, g.lda, g.b, g.bOffset, g.ldb, g.c, g.cOffset, g.ldc, g.alpha, g.accumulate, g.batch, g.strideA, g.strideB, g.strideC, g.bias ?? null, g.bf16 ?? false);
      applyGemmEpilogue(b, g);
    },
    binary: (op, x, xShape, y, yShape, out, outShape) => {
      // The additions of a training step (residuals, biases) natively; the rest in js.
      if (op === 'add' && x.length === out.length) {
        if (y.length === out.length) return a.add(x, y, out);
        if (isSuffix(yShape, outShape)) return a.addRows(x, y, out, out.length / y.length, y.length);
      }
      jsBackend.binary(op, x, xShape, y, yShape, out, outShape);
    },
    reduceSumTo: (src, srcShape, dst, dstShape) => {
      if (dst.length > 1 && src.length % dst.length === 0 && isSuffix(dstShape, srcShape)) return a.colSumAdd(src, src.length / dst.length, dst.length, dst);
      jsBackend.reduceSumTo(src, srcShape, dst, dstShape);
    },
    unary: (op, x, out) => {
      if (op === 'gelu') return a.geluForward(x, out);
      if (op === 'silu') return a.siluForward(x, out);
      jsBackend.unary(op, x, out);
    },
    unaryBackward: (op, x, y, dy, dx, acc) => {
      if (op === 'gelu') return a.geluBackward(x, dy, dx, acc);
      if (op === 'silu') return a.siluBackward(x, dy, dx, acc);
      jsBackend.unaryBackward(op, x, y, dy, dx, acc);
    },
    swigluForward: (g, u, out) => a.swigluForward(g, u, out),
    swigluBackward: (g, u, dy, dg, du, accG, accU) => a.swigluBackward(g, u, dy, dg, du, accG, accU),
    rope: (x, out, cos, sin, d, dir, acc) => a.rope(x, out, cos, sin, d.B, d.T, d.nHead, d.headDim, d.layout === 'half', cos.length !== d.T * (d.headDim / 2), dir, acc),
    softmaxForward: (x, out, rows, cols) => a.softmaxForward(x, out, rows, cols),
    argmaxRows: (x, rows, cols, out) => a.argmaxRows(x, rows, cols, out),
    layerNormForward: (x, w, b, out, mean, rstd, rows, cols, eps) => a.layerNormForward(x, w, b, out, mean, rstd, rows, cols, eps),
    layerNormBackward: (x, w, mean, rstd, dy, dx, dw, db, rows, cols, acc) => a.layerNormBackward(x, w, mean, rstd, dy, dx, dw, db, rows, cols, acc),
    rmsNormForward: (x, w, out, rstd, rows, cols, eps) => a.rmsNormForward(x, w, out, rstd, rows, cols, eps),
    rmsNormBackward: (x, w, rstd, dy, dx, dw, rows, cols, acc) => a.rmsNormBackward(x, w, rstd, dy, dx, dw, rows, cols, acc),
    embeddingForward: (w, ids, out, dim) => a.embeddingForward(w, ids, out, dim),
    embeddingBackward: (d, ids, dw, dim) => a.embeddingBackward(d, ids, dw, dim),
    attentionForward: (q, k, v, out, d) => {
      const lse = new Float32Array(d.B * d.nHead * d.Tq);
      a.attentionForward(q, k, v, out, lse, ...dimsArgs(d));
      return lse;
    },
    attentionBackward: (saved, q, k, v, out, dOut, dq, dk, dv, d, acc) =>
      a.attentionBackward(q, k, v, out, saved as Float32Array, dOut, dq, dk, dv, ...dimsArgs(d), acc),
    attentionDiscard: () => {}, // the log-sum-exps are a plain array: the garbage collector's
    attentionCached: (q, kc, vc, out, start, d, fresh) => {
      if (fresh) storeFresh(kc, vc, fresh, d);
      a.attentionCached(q, kc, vc, out, start, d.B, d.Tq, d.past, d.cap, d.nHead, d.nKvHead, d.headDim, d.scale);
    },
    attentionCachedRagged: (q, out, seqs, d, fresh) => {
      if (fresh) storeFreshRagged(seqs, d, fresh);
      const meta = new Int32Array(seqs.length * 5);
      seqs.forEach((s, i) => meta.set([s.cap, s.past, s.start, s.offset, s.Tq], i * 5));
      a.attentionCachedRagged(q, out, seqs.map((s) => s.k), seqs.map((s) => s.v), meta, d.nHead, d.nKvHead, d.headDim, d.scale);
    },
    attentionPaged: (q, out, kPool, vPool, seqs, d, fresh) => {
      if (fresh) storeFreshPaged(kPool, vPool, seqs, d, fresh);
      // Every block table in one array; meta per sequence: where its table starts, past, offset, Tq.
      const tables = new Int32Array(seqs.reduce((n, s) => n + s.table.length, 0));
      const meta = new Int32Array(seqs.length * 4);
      let at = 0;
      seqs.forEach((s, i) => {
        const blocks = Math.ceil((s.past + s.Tq) / d.blockTokens);
        if (s.table.length < blocks) throw new Error(`attentionPaged: sequence ${i} has ${s.table.length} blocks for ${s.past + s.Tq} slots`);
        tables.set(s.table as ArrayLike<number>, at);
        meta.set([at, s.past, s.offset, s.Tq], i * 4);
        at += s.table.length;
      });
      a.attentionPaged(q, out, kPool, vPool, tables, meta, d.blockTokens, d.nHead, d.nKvHead, d.headDim, d.scale);
    },
    hugePageArray: (length) => {
      const buffer = a.hugePageBuffer(length * Float32Array.BYTES_PER_ELEMENT);
      return buffer ? new Float32Array(buffer) : new Float32Array(length);
    },
    linearInt8: (x, rows, K, w, scale, bias, out, N, epilogue) => {
      a.linearInt8(x, rows, K, w, scale, bias, out, N);
      applyRowsEpilogue(b, out.subarray(0, rows * N), epilogue);
    },
    linearPanels: (x, rows, K, panels, bias, out, N) => a.linearPanels(x, rows, K, panels, bias, out, N),
    topRows: (q, p, k, rows, scores) => {
      if (q.length !== p.width) throw new Error(`query of ${q.length} components for rows of ${p.width}`);
      if (rows.length < Math.min(k, p.n) || scores.length < Math.min(k, p.n)) throw new Error(`topRows: room for ${Math.min(rows.length, scores.length)} of ${Math.min(k, p.n)} results`);
      if (p.data.length < Math.ceil(p.n / ROW_PANEL) * p.width * ROW_PANEL || (p.data instanceof Int8Array && (p.scale?.length ?? 0) < p.n)) throw new Error(`topRows: panels too short for ${p.n} rows of ${p.width}`);
      return a.topRows(q, p.n, p.width, p.data, p.data instanceof Int8Array ? p.scale : null, k, rows, scores);
    },
    topRowsOf: (q, m, width, candidates, count, k, rows, scores) => {
      if (q.length !== width) throw new Error(`query of ${q.length} components for rows of ${width}`);
      if (count > candidates.length || rows.length < Math.min(k, count) || scores.length < Math.min(k, count)) throw new Error(`topRowsOf: ${count} candidates, room for ${Math.min(rows.length, scores.length)}`);
      for (let i = 0; i < count; i++) if (candidates[i]! < 0 || (candidates[i]! + 1) * width > m.length) throw new Error(`topRowsOf: row ${candidates[i]} is outside the matrix`);
      return a.topRowsOf(q, m, width, candidates, count, k, rows, scores);
    },
    linearQuantized: (x, rows, w, bias, out, epilogue) => {
      quantRowBytes(w.type, w.cols); // checks cols against the block size
      if (w.data.length !== w.rows * quantRowBytes(w.type, w.cols)) throw new Error(`linearQuantized: ${w.data.length} bytes for a ${w.rows}×${w.cols} ${w.type} matrix`);
      interleaveOnce(a, w);
      a.linearQuantized(x, rows, GGML_TYPE[w.type], w.data, w.rows, w.cols, bias, out, w.layout === 'rows16' ? INTERLEAVE : 0);
      applyRowsEpilogue(b, out.subarray(0, rows * w.rows), epilogue);
    },
    // Label smoothing (a translation model's loss) runs js's loops: the C++ kernels compute plain cross-entropy.
    crossEntropyForward: (logits, targets, lse, loss, rows, vocab, ignore, scale, smoothing = 0) => {
      if (smoothing > 0) return jsBackend.crossEntropyForward(logits, targets, lse, loss, rows, vocab, ignore, scale, smoothing);
      loss[0] = scale * a.crossEntropyForward(logits, targets, lse, rows, vocab, ignore)[0];
    },
    crossEntropyBackward: (logits, targets, lse, dLoss, d, rows, vocab, ignore, scale, acc, smoothing = 0) =>
      smoothing > 0
        ? jsBackend.crossEntropyBackward(logits, targets, lse, dLoss, d, rows, vocab, ignore, scale, acc, smoothing)
        : a.crossEntropyBackward(logits, targets, lse, d, rows, vocab, ignore, dLoss[0]! * scale, acc),
    dropoutForward: (x, out, mask, p, seed) => a.dropoutForward(x, out, mask, p, seed),
    dropoutBackward: (dOut, mask, dx, acc) => a.dropoutBackward(dOut, mask, dx, acc),
    adamwStep: (p, g, m, v, h) => a.adamw(p, g, m, v, h.lr, h.beta1, h.beta2, h.eps, h.weightDecay, h.step),
    sumSquares: (xs, out) => {
      let sq = 0;
      for (const x of xs) sq += a.sumSquares(x);
      out[0] = sq;
    },
    scaleInPlace: (x, s) => a.scaleInPlace(x, s),
    ...nativeDecoderSteps(a, () => b),
  };
  return b;
}
