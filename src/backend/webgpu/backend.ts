import { UserError } from '../../util/errors.js';
import type { Backend, ProductEpilogue } from '../backend.js';
import { quantRowBytes, storedRow, type QuantizedMatrix } from '../quantized_matrix.js';
import type { DeviceArray, DeviceMemory } from '../storage.js';
import type { GpuContext } from './device.js';
import { adamwStep } from './kernels/adamw.js';
import { argmaxRows } from './kernels/argmax.js';
import { attentionBackward, attentionForward, type GpuAttentionDims } from './kernels/attention.js';
import type { GpuProductEpilogue } from './kernels/gemm_epilogue.js';
import { attentionCached } from './kernels/attention_cached.js';
import { attentionPaged, pagedInfo } from './kernels/attention_paged.js';
import { crossEntropyBackward, crossEntropyForward } from './kernels/cross_entropy.js';
import { dropoutBackward, dropoutForward } from './kernels/dropout.js';
import { binary, reduceSumTo, scaleInPlace, unary, unaryBackward } from './kernels/elementwise.js';
import { embeddingBackward, embeddingForward, embeddingLinks } from './kernels/embedding.js';
import { clipFactor, scaleByDevice, sumSquares } from './kernels/grad_norm.js';
import { gemm } from './kernels/gemm.js';
import { linearInt8 } from './kernels/int8.js';
import { embeddingQuantizedStored } from './kernels/embedding_quantized.js';
import { linearKQuant } from './kernels/linear_kquant.js';
import { linearQuantized } from './kernels/linear_quantized.js';
import { l2NormalizeBackward, l2NormalizeForward } from './kernels/l2_normalize.js';
import { copyRows, permute } from './kernels/layout.js';
import { maxPoolBackward, maxPoolForward } from './kernels/max_pool.js';
import { layerNormBackward, layerNormForward } from './kernels/layernorm.js';
import { rmsNormBackward, rmsNormForward } from './kernels/rmsnorm.js';
import { rope } from './kernels/rope.js';
import { swigluBackward, swigluForward } from './kernels/swiglu.js';
import { softmaxBackward, softmaxForward } from './kernels/softmax.js';

/**
 * The WebGPU backend: the Backend contract (backend.ts) over a GpuContext
 * (device.ts) and the WGSL kernels (kernels/). Tensors hold GpuArrays —
 * ranges of pooled GPU buffers — and every entry point only records work on
 * the context's command encoder; nothing waits for the GPU except
 * `device.read` and `device.sync` (the loss of a log step, a sampled row, a
 * checkpoint). An entry point with no kernel yet throws "not supported on
 * webgpu: X" rather than computing on the host behind the caller's back.
 */

/** A tensor's values on the GPU: a span of a pooled buffer, marked with the backend that can use it. */
export interface GpuArray extends DeviceArray {
  readonly backend: 'webgpu';
  readonly buffer: GPUBuffer;
  /** First element (not byte) in the buffer. */
  readonly offset: number;
  /** Allocated by this backend (not a view of another array): only these go back to the pool. */
  readonly owned: boolean;
}

export const WEBGPU = 'webgpu';

const arrayOf = (buffer: GPUBuffer, offset: number, length: number, owned: boolean): GpuArray => ({ backend: WEBGPU, buffer, offset, length, owned });

/** A span the kernels can take, or one clear line when a host array or another backend's storage arrives. */
function gpu(x: GpuArray | Float32Array, what: string): GpuArray {
  if (x instanceof Float32Array) {
    throw new Error(`webgpu ${what}: got a host Float32Array; tensors used on webgpu must live on the device (moveToBackend(model) after building or loading it)`);
  }
  if (x.backend !== WEBGPU) throw new Error(`webgpu ${what}: got storage of the ${String(x.backend)} backend`);
  return x;
}

/** A decode-time product's epilogue with its addend on the device. */
const deviceEpilogue = (e: ProductEpilogue<GpuArray | Float32Array> | null | undefined, what: string): GpuProductEpilogue | null =>
  e ? { activation: e.activation ?? null, addend: e.addend ? gpu(e.addend, what) : null } : null;

/** The device memory: allocation through the context's pool, copies recorded in order with the kernels. */
function deviceMemory(ctx: GpuContext): DeviceMemory<GpuArray> {
  return {
    alloc(n, zeroed) {
      const bytes = Math.max(4, n * 4);
      return arrayOf(zeroed ? ctx.zeros(Math.max(1, n)) : ctx.buffer(bytes), 0, n, true);
    },
    release(s) {
      if (s.owned) ctx.release(s.buffer);
    },
    upload(values) {
      return arrayOf(values.length ? ctx.upload(values) : ctx.buffer(4), 0, values.length, true);
    },
    write(s, values) {
      if (values.length > s.length) throw new Error(`webgpu write: ${values.length} values into ${s.length}`);
      ctx.write(s.buffer, s.offset, values);
    },
    copy(src, srcOffset, dst, dstOffset, n) {
      if (n > 0) ctx.copy(gpu(src, 'copy').buffer, src.offset + srcOffset, gpu(dst, 'copy').buffer, dst.offset + dstOffset, n);
    },
    fill(s, value) {
      if (s.length === 0) return;
      if (value === 0) ctx.encode((e) => e.clearBuffer(s.buffer, s.offset * 4, s.length * 4));
      else ctx.write(s.buffer, s.offset, new Float32Array(s.length).fill(value));
    },
    view(s, begin, length) {
      if (begin < 0 || begin + length > s.length) throw new Error(`webgpu view ${begin}+${length} outside ${s.length} values`);
      return arrayOf(s.buffer, s.offset + begin, length, false);
    },
    adjoin(parts) {
      for (let i = 1; i < parts.length; i++) {
        if (parts[i]!.buffer !== parts[0]!.buffer || parts[i]!.offset !== parts[i - 1]!.offset + parts[i - 1]!.length) return null;
      }
      return parts.length === 0 ? null : arrayOf(parts[0]!.buffer, parts[0]!.offset, parts.reduce((n, s) => n + s.length, 0), false);
    },
    read: (s) => ctx.read(s.buffer, s.offset, s.length),
    flush: () => ctx.flush(),
    sync: () => ctx.sync(),
  };
}

/** Host integers (token ids, targets, row starts) for one call: staged in the context's upload ring (no buffer of their own, one queue write per submit). */
function withInts<T>(ctx: GpuContext, ints: Int32Array, f: (span: GpuArray) => T): T {
  return ctx.withStaged(ints, (s) => f(arrayOf(s.buffer, s.offset, s.length, false)));
}

/** Device copies of host arrays that are constants of a model (int8 weights, their scales), made once per array. */
class DeviceCopies<T extends object> {
  private readonly copies = new WeakMap<T, GpuArray>();
  constructor(
    private readonly make: (host: T) => GPUBuffer,
    private readonly length: (host: T) => number = (host) => (host as unknown as { length: number }).length,
  ) {}

  of(host: T): GpuArray {
    let a = this.copies.get(host);
    if (!a) {
      a = arrayOf(this.make(host), 0, this.length(host), true);
      this.copies.set(host, a);
    }
    return a;
  }
}

/** What attentionForward keeps for attentionBackward. */
interface AttentionSaved {
  lse: GpuArray;
  dims: GpuAttentionDims;
}

/** The Backend over one GpuContext. */
export function createWebGpuBackend(ctx: GpuContext): Backend<GpuArray> {
  const scratch = (n: number) => arrayOf(ctx.buffer(Math.max(4, n * 4)), 0, n, true);
  // An int8 model's weights and scales stay host typed arrays (they are not tensors): uploaded on first use, kept while the array lives.
  const int8Weights = new DeviceCopies((w: Int8Array) => {
    const bytes = new Int8Array(Math.ceil(Math.max(4, w.length) / 4) * 4);
    bytes.set(w);
    return ctx.upload(new Uint32Array(bytes.buffer));
  });
  const floatConstants = new DeviceCopies((x: Float32Array) => ctx.upload(x.length ? x : new Float32Array(1)));
  // A GGUF model's block-quantized matrices: their bytes in ggml's row order (whatever layout a CPU backend gave them), uploaded once.
  const quantizedWeights = new DeviceCopies((m: QuantizedMatrix) => {
    const rowBytes = quantRowBytes(m.type, m.cols);
    const bytes = new Uint8Array(Math.ceil(Math.max(4, m.rows * rowBytes) / 4) * 4);
    for (let n = 0; n < m.rows; n++) bytes.set(storedRow(m, n), n * rowBytes);
    return ctx.upload(new Uint32Array(bytes.buffer));
  }, (m) => m.rows * quantRowBytes(m.type, m.cols));
  // A quantized layer's bias is a plain tensor beside its int8 weight, not a parameter moveToBackend uploads: a constant too.
  const deviceBias = (b: GpuArray | Float32Array) => (b instanceof Float32Array ? floatConstants.of(b) : gpu(b, 'quantized linear bias'));
  return {
    name: WEBGPU,
    device: deviceMemory(ctx),
    // Field by field, not { ...g, a: … }: a spread whose fields are then overridden leaves V8 a dictionary-mode
    // object, about 6 µs to build and slow to read (measured), on every product.
    gemm: (g) => {
      if (g.bf16) throw new UserError('bf16 matrix products run on the host backends (js, native): the webgpu kernels do not round to bf16; use fp32 (precision \'fp32\') on webgpu');
      const add = g.epilogue?.addend;
      gemm(ctx, {
        transA: g.transA, transB: g.transB, M: g.M, N: g.N, K: g.K,
        a: gpu(g.a, 'gemm').buffer, aOffset: g.a.offset + g.aOffset, lda: g.lda,
        b: gpu(g.b, 'gemm').buffer, bOffset: g.b.offset + g.bOffset, ldb: g.ldb,
        c: gpu(g.c, 'gemm').buffer, cOffset: g.c.offset + g.cOffset, ldc: g.ldc,
        alpha: g.alpha, accumulate: g.accumulate, batch: g.batch, strideA: g.strideA, strideB: g.strideB, strideC: g.strideC,
        bias: g.bias ? gpu(g.bias, 'gemm').buffer : null, biasOffset: g.bias?.offset ?? 0,
        activation: g.epilogue?.activation ?? null,
        addend: add ? { buffer: gpu(add.data, 'gemm').buffer, offset: add.data.offset + add.offset, ld: add.ld, stride: add.stride } : null,
      });
    },
    binary: (op, a, aShape, b, bShape, out, outShape) => binary(ctx, op, gpu(a, op), aShape, gpu(b, op), bShape, gpu(out, op), outShape),
    reduceSumTo: (src, srcShape, dst, dstShape) => reduceSumTo(ctx, gpu(src, 'reduceSumTo'), srcShape, gpu(dst, 'reduceSumTo'), dstShape),
    unary: (op, x, out) => unary(ctx, op, gpu(x, op), gpu(out, op)),
    unaryBackward: (op, x, y, dy, dx, acc) => unaryBackward(ctx, op, gpu(x, op), gpu(y, op), gpu(dy, op), gpu(dx, op), acc),
    softmaxForward: (x, out, rows, cols) => softmaxForward(ctx, gpu(x, 'softmax'), gpu(out, 'softmax'), rows, cols),
    softmaxBackward: (y, dy, dx, rows, cols) => softmaxBackward(ctx, gpu(y, 'softmax'), gpu(dy, 'softmax'), gpu(dx, 'softmax'), rows, cols),
    layerNormForward: (x, w, b, out, mean, rstd, rows, cols, eps) =>
      layerNormForward(ctx, gpu(x, 'layerNorm'), w && gpu(w, 'layerNorm'), b && gpu(b, 'layerNorm'), gpu(out, 'layerNorm'), gpu(mean, 'layerNorm'), gpu(rstd, 'layerNorm'), rows, cols, eps),
    layerNormBackward: (x, w, mean, rstd, dy, dx, dW, dB, rows, cols, acc) =>
      layerNormBackward(ctx, gpu(x, 'layerNorm'), w && gpu(w, 'layerNorm'), gpu(mean, 'layerNorm'), gpu(rstd, 'layerNorm'), gpu(dy, 'layerNorm'), gpu(dx, 'layerNorm'),
        dW && gpu(dW, 'layerNorm'), dB && gpu(dB, 'layerNorm'), rows, cols, acc),
    rmsNormForward: (x, w, out, rstd, rows, cols, eps) => rmsNormForward(ctx, gpu(x, 'rmsNorm'), w && gpu(w, 'rmsNorm'), gpu(out, 'rmsNorm'), gpu(rstd, 'rmsNorm'), rows, cols, eps),
    rmsNormBackward: (x, w, rstd, dy, dx, dW, rows, cols, acc) =>
      rmsNormBackward(ctx, gpu(x, 'rmsNorm'), w && gpu(w, 'rmsNorm'), gpu(rstd, 'rmsNorm'), gpu(dy, 'rmsNorm'), gpu(dx, 'rmsNorm'), dW && gpu(dW, 'rmsNorm'), rows, cols, acc),
    scaleInPlace: (x, s) => scaleInPlace(ctx, gpu(x, 'scaleInPlace'), s),

    maxPoolForward: (x, out, winner, B, T, C) => maxPoolForward(ctx, gpu(x, 'maxPool'), gpu(out, 'maxPool'), gpu(winner, 'maxPool'), B, T, C),
    maxPoolBackward: (dy, winner, dx, B, T, C) => maxPoolBackward(ctx, gpu(dy, 'maxPool'), gpu(winner, 'maxPool'), gpu(dx, 'maxPool'), B, T, C),
    l2NormalizeForward: (x, y, norms, rows, D) => l2NormalizeForward(ctx, gpu(x, 'l2Normalize'), gpu(y, 'l2Normalize'), gpu(norms, 'l2Normalize'), rows, D),
    l2NormalizeBackward: (y, norms, dy, dx, rows, D) => l2NormalizeBackward(ctx, gpu(y, 'l2Normalize'), gpu(norms, 'l2Normalize'), gpu(dy, 'l2Normalize'), gpu(dx, 'l2Normalize'), rows, D),
    permute: (src, shape, perm, dst, acc) => permute(ctx, gpu(src, 'permute'), shape, perm, gpu(dst, 'permute'), acc),
    copyRows: (src, dst, layout, acc) => copyRows(ctx, gpu(src, 'copyRows'), gpu(dst, 'copyRows'), layout, acc),
    embeddingForward: (w, ids, out, dim) => withInts(ctx, ids, (i) => embeddingForward(ctx, gpu(w, 'embedding'), i, gpu(out, 'embedding'), dim)),
    embeddingForwardStored: (w, ids, n, out, dim) => {
      const i = gpu(ids, 'embedding');
      embeddingForward(ctx, gpu(w, 'embedding'), { buffer: i.buffer, offset: i.offset, length: n }, gpu(out, 'embedding'), dim, true);
    },
    embeddingBackward: (dOut, ids, dW, dim) =>
      // The token chains are made on the host, where the ids are (O(N)), and go up beside them.
      withInts(ctx, ids, (i) => withInts(ctx, new Int32Array(embeddingLinks(ids).buffer), (links) => embeddingBackward(ctx, gpu(dOut, 'embedding'), i, links, gpu(dW, 'embedding'), dim))),
    crossEntropyForward: (logits, targets, lse, loss, rows, vocab, ignore, scale, smoothing = 0) =>
      withInts(ctx, targets, (t) => {
        // The kernel leaves [sum, count] on the device; the loss is scale·sum (the op passes 1/count).
        const result = scratch(2);
        crossEntropyForward(ctx, gpu(logits, 'crossEntropy'), t, gpu(lse, 'crossEntropy'), result, rows, vocab, ignore, smoothing);
        ctx.copy(result.buffer, 0, gpu(loss, 'crossEntropy').buffer, loss.offset, 1);
        scaleInPlace(ctx, loss, scale);
        ctx.release(result.buffer);
      }),
    crossEntropyBackward: (logits, targets, lse, dLoss, dLogits, rows, vocab, ignore, scale, acc, smoothing = 0) =>
      withInts(ctx, targets, (t) => {
        // The loss's own gradient dLoss stays on the device: the kernel reads it there (from a copy if it shares dLogits' buffer).
        const own = gpu(dLoss, 'crossEntropy');
        const shared = own.buffer === gpu(dLogits, 'crossEntropy').buffer ? scratch(1) : null;
        if (shared) ctx.copy(own.buffer, own.offset, shared.buffer, 0, 1);
        crossEntropyBackward(ctx, gpu(logits, 'crossEntropy'), t, gpu(lse, 'crossEntropy'), dLogits, rows, vocab, ignore, scale, acc, shared ?? own, smoothing);
        if (shared) ctx.release(shared.buffer);
      }),
    dropoutForward: (x, out, mask, p, seed) => dropoutForward(ctx, gpu(x, 'dropout'), gpu(out, 'dropout'), gpu(mask, 'dropout'), p, seed),
    dropoutBackward: (dOut, mask, dx, acc) => dropoutBackward(ctx, gpu(dOut, 'dropout'), gpu(mask, 'dropout'), gpu(dx, 'dropout'), acc),
    adamwStep: (p, g, m, v, h) => adamwStep(ctx, gpu(p, 'adamw'), gpu(g, 'adamw'), gpu(m, 'adamw'), gpu(v, 'adamw'), h),
    sumSquares: (xs, out) => {
      if (xs.length === 0) deviceMemory(ctx).fill(out, 0);
      xs.forEach((x, i) => sumSquares(ctx, gpu(x, 'sumSquares'), gpu(out, 'sumSquares'), i > 0));
    },
    clipByNorm: (grads, stats, maxNorm) => {
      // One invocation makes [Σg², norm, factor]; each gradient is scaled by the factor read on the device.
      const st = gpu(stats, 'clipByNorm');
      clipFactor(ctx, st, maxNorm);
      const factor = { buffer: st.buffer, offset: st.offset + 2, length: 1 };
      for (const g of grads) scaleByDevice(ctx, gpu(g, 'clipByNorm'), factor);
    },

    attentionForward: (q, k, v, out, d): AttentionSaved => {
      // Saved for the backward: each row's log-sum-exp (the weights are recomputed) and the padding flags on the device.
      const lse = scratch(d.B * d.nHead * d.Tq);
      const { keyPadding, ...rest } = d;
      const padding = keyPadding ? ctx.upload(Uint32Array.from(keyPadding)) : null;
      // keyPadding left out of the spread and added after it: an overridden field would leave V8 a dictionary-mode object.
      const dims: GpuAttentionDims = { ...rest, keyPadding: padding && arrayOf(padding, 0, keyPadding!.length, true) };
      attentionForward(ctx, gpu(q, 'attention'), gpu(k, 'attention'), gpu(v, 'attention'), gpu(out, 'attention'), lse, dims);
      return { lse, dims };
    },
    attentionBackward: (saved, q, k, v, out, dOut, dq, dk, dv, _d, acc) => {
      const { lse, dims } = saved as AttentionSaved;
      attentionBackward(ctx, lse, gpu(q, 'attention'), gpu(k, 'attention'), gpu(v, 'attention'), gpu(out, 'attention'), gpu(dOut, 'attention'),
        gpu(dq, 'attention'), gpu(dk, 'attention'), gpu(dv, 'attention'), dims, acc);
      ctx.release(lse.buffer);
      if (dims.keyPadding) ctx.release(dims.keyPadding.buffer);
    },
    attentionDiscard: (saved) => {
      const { lse, dims } = saved as AttentionSaved;
      ctx.release(lse.buffer);
      if (dims.keyPadding) ctx.release(dims.keyPadding.buffer);
    },
    // Generation: the KV caches are device storage (generate/kv_cache.ts); only the row starts come from the host.
    attentionCached: (q, kCache, vCache, out, start, d, fresh) =>
      withInts(ctx, start, (s) =>
        attentionCached(ctx, gpu(q, 'attentionCached'), gpu(kCache, 'attentionCached'), gpu(vCache, 'attentionCached'), gpu(out, 'attentionCached'), s, d,
          fresh ? { k: gpu(fresh.k, 'attentionCached'), v: gpu(fresh.v, 'attentionCached') } : null)),
    attentionCachedRagged: (q, out, seqs, d, fresh) =>
      // One dispatch per sequence (each has its own cache, and stores its new keys and values itself), all recorded in the same command buffer.
      withInts(ctx, Int32Array.from(seqs, (s) => s.start), (starts) => {
        const C = d.nHead * d.headDim;
        const W = d.nKvHead * d.headDim;
        seqs.forEach((s, i) => {
          const rows = (x: GpuArray, width = C) => arrayOf(x.buffer, x.offset + s.offset * width, s.Tq * width, false);
          const kv = fresh ? { k: rows(gpu(fresh.k, 'attentionCachedRagged'), W), v: rows(gpu(fresh.v, 'attentionCachedRagged'), W) } : null;
          attentionCached(ctx, rows(gpu(q, 'attentionCachedRagged')), gpu(s.k, 'attentionCachedRagged'), gpu(s.v, 'attentionCachedRagged'), rows(gpu(out, 'attentionCachedRagged')),
            arrayOf(starts.buffer, starts.offset + i, 1, false), { B: 1, Tq: s.Tq, past: s.past, cap: s.cap, ...d }, kv);
        });
      }),
    linearInt8: (x, rows, K, w, scale, bias, out, N, epilogue) =>
      linearInt8(ctx, gpu(x, 'linearInt8'), rows, K, int8Weights.of(w).buffer, 0, floatConstants.of(scale), bias && deviceBias(bias), gpu(out, 'linearInt8'), N, deviceEpilogue(epilogue, 'linearInt8')),
    argmaxRows: (x, rows, cols, out) => argmaxRows(ctx, gpu(x, 'argmaxRows'), rows, cols, gpu(out, 'argmaxRows')),
    attentionPaged: (q, out, kPool, vPool, seqs, d, fresh) => {
      // One dispatch for every sequence: each query row finds its slots through its block table, staged with the rows.
      const { info, rows } = pagedInfo(seqs);
      const kv = fresh ? { k: gpu(fresh.k, 'attentionPaged'), v: gpu(fresh.v, 'attentionPaged') } : null;
      withInts(ctx, info, (span) => attentionPaged(ctx, gpu(q, 'attentionPaged'), gpu(kPool, 'attentionPaged'), gpu(vPool, 'attentionPaged'), span, rows, gpu(out, 'attentionPaged'), d, kv));
    },
    linearQuantized: (x, rows, w, bias, out, epilogue) => {
      const [input, weights, b, o, e] = [gpu(x, 'linearQuantized'), quantizedWeights.of(w).buffer, bias && deviceBias(bias), gpu(out, 'linearQuantized'), deviceEpilogue(epilogue, 'linearQuantized')];
      // q8_0 and q4_0 multiply 8-bit activation blocks; the k-quants multiply x itself, as js does.
      if (w.type === 'q8_0' || w.type === 'q4_0') linearQuantized(ctx, input, rows, w.cols, weights, w.type, w.rows, b, o, e);
      else linearKQuant(ctx, input, rows, w.cols, weights, w.type, w.rows, b, o, e);
    },
    embeddingQuantizedStored: (table, ids, n, out) => {
      const i = gpu(ids, 'embeddingQuantizedStored');
      embeddingQuantizedStored(ctx, quantizedWeights.of(table).buffer, table.type, table.rows, table.cols, { buffer: i.buffer, offset: i.offset, length: n }, gpu(out, 'embeddingQuantizedStored'));
    },
    swigluForward: (g, u, out) => swigluForward(ctx, gpu(g, 'swiglu'), gpu(u, 'swiglu'), gpu(out, 'swiglu')),
    swigluBackward: (g, u, dy, dg, du, accG, accU) =>
      swigluBackward(ctx, gpu(g, 'swiglu'), gpu(u, 'swiglu'), gpu(dy, 'swiglu'), dg && gpu(dg, 'swiglu'), du && gpu(du, 'swiglu'), accG, accU),
    rope: (x, out, cos, sin, d, dir, acc) => rope(ctx, gpu(x, 'rope'), gpu(out, 'rope'), cos, sin, d, dir, acc),
  };
}
