import type { RopeDims } from '../../backend.js';
import { envCount, f32, type DeferredWork, type GpuContext, type GpuSpan, type Param, u32 } from '../device.js';

/**
 * A decode step's small producer of a product's input, folded into the
 * product that reads it.
 *
 * Decoding one token, a pre-norm block runs norm → product twice (ln_1 then
 * the q·k·v product, ln_2 then the up projection; Llama's q, k, v and gate,
 * up read the same normed x), the model's last norm feeds the vocabulary
 * head, Llama rotates its new queries and keys (RoPE) before the cached
 * attention, and its feed-forward runs silu(gate) ∘ up → down. Each of those
 * producers is a dispatch over a single row: a GPU spends about as long
 * launching it as running it, and the host about 10 µs recording it. 25 of
 * the 89 dispatches of a 124M GPT-2 token were norms; 5 of a Llama block's 13
 * were norms, rotations and SwiGLU.
 *
 * So a LayerNorm, RMSNorm, RoPE rotation or SwiGLU product of at most
 * `ATTN_WEBGPU_NORM_FOLD` rows (8) is deferred (`GpuContext.defer`) instead
 * of recorded. A reader that can fold one finds it (`foldedInput`), binds
 * the producer's inputs in place of its output, and computes each input
 * value as it reads it. The cached attention (attention_cached.ts) rotates
 * its queries and new keys itself. The products — the skinny fp32 product
 * (gemm_skinny.ts), the int8 product (int8.ts), the activation quantizer of
 * the GGUF products (linear_quantized.ts) — fold norms and SwiGLU
 * (`foldedProductInput`, `folded` below):
 *
 * - a norm: the workgroup first computes its rows' mean and 1/σ with the
 *   formulas of layernorm.ts and rmsnorm.ts (the mean, then the variance
 *   from a second pass over x − mean; RMSNorm's mean of squares), then
 *   normalises, scales and shifts each value. Every workgroup of the reader
 *   recomputes the statistics, so only readers of at most
 *   MAX_FOLD_WORKGROUPS fold one (the vocabulary head leaves its norm a
 *   dispatch of its own);
 * - SwiGLU: g·σ(g)·up, swiglu.ts's formula, from the two inputs.
 *
 * Anything else that touches the output (a read-back, an elementwise kernel,
 * a backward pass reading a norm's saved statistics) records the producer
 * first, through GpuContext's deferral, so results never change; a decode
 * step that releases the output unread drops it. js is the reference: the
 * folded products are tested against js's producer then product.
 */

/** ATTN_WEBGPU_NORM_FOLD: the most rows a producer may have to be folded (0 = never), 8 by default (the skinny product's rows). */
const initialFoldRows = () => envCount('ATTN_WEBGPU_NORM_FOLD', 8, 'rows');

/** Rows whose statistics a folding kernel keeps in workgroup memory. */
export const MAX_FOLD_ROWS = 8;

let foldRows: number | null = null;

/** Set the most rows a folded producer may have (0: off; null: back to ATTN_WEBGPU_NORM_FOLD or the default). */
export function setFoldRows(n: number | null): void {
  foldRows = n === null ? null : Math.min(n, MAX_FOLD_ROWS);
}

const maxFoldRows = () => (foldRows ??= Math.min(initialFoldRows(), MAX_FOLD_ROWS));

/**
 * Workgroups of a reader at most for it to fold a norm. Each of them
 * recomputes the statistics (two passes over the rows) and reads the norm's
 * weight and bias beside its operand: work that grows with the workgroups
 * while the dispatch it saves does not. A vocabulary head (50 257 columns of
 * 124M, 49 152 of SmolLM2) is past it.
 */
export const MAX_FOLD_WORKGROUPS = 4096;

/** A SwiGLU product is deferred when it has at most this many values a row of the most rows folded (Llama 3 8B's is 14 336 wide). */
const MAX_SWIGLU_WIDTH = 32768;

/**
 * out[rows, cols] = norm(input)·weight (+ bias); out[length] = silu(input)·up
 * (elementwise: any rows × cols of that length); out = RoPE(input) with the
 * host's cos and sin tables (rope.ts), forward.
 */
export type FoldedInput =
  | { kind: 'layer' | 'rms'; input: GpuSpan; weight: GpuSpan | null; bias: GpuSpan | null; eps: number; rows: number; cols: number; out: GpuSpan }
  | { kind: 'swiglu'; input: GpuSpan; up: GpuSpan; length: number; out: GpuSpan }
  | { kind: 'rope'; input: GpuSpan; cos: Float32Array; sin: Float32Array; dims: RopeDims; rows: number; cols: number; out: GpuSpan };

const folds = new WeakMap<DeferredWork, FoldedInput>();

/** The input spans a fold reads (the one bound in place of the output first). */
const readsOf = (f: FoldedInput): (GpuSpan | null)[] => (f.kind === 'swiglu' ? [f.input, f.up] : f.kind === 'rope' ? [f.input] : [f.input, f.weight, f.bias]);

/**
 * Defer `run` (the producer's own kernel, writing `f.out` and any saved
 * statistics `stats`) when it is small enough to fold and writes none of its
 * inputs; false when it must be recorded now.
 */
export function deferInput(ctx: GpuContext, f: FoldedInput, stats: readonly GpuSpan[], run: () => void): boolean {
  const rows = maxFoldRows();
  if (f.kind === 'swiglu' ? f.length === 0 || f.length > rows * MAX_SWIGLU_WIDTH : f.rows === 0 || f.rows > rows) return false;
  const inputs = readsOf(f).map((s) => s?.buffer ?? null);
  const outputs = [f.out.buffer, ...stats.map((s) => s.buffer)];
  if (outputs.some((b) => inputs.includes(b)) || new Set(outputs).size !== outputs.length) return false;
  const work: DeferredWork = { outputs, inputs, run };
  folds.set(work, f);
  ctx.defer(work);
  return true;
}

/**
 * The pending producer whose output is exactly rows × cols values from
 * element `offset` of `buffer`, for a reader of `workgroups` workgroups to
 * fold in; null when there is none (or a norm, and the reader is too wide).
 */
export function foldedInput(ctx: GpuContext, buffer: GPUBuffer, offset: number, rows: number, cols: number, workgroups: number): FoldedInput | null {
  const work = ctx.deferredWriting(buffer);
  const f = work ? folds.get(work) : undefined;
  if (!f || f.out.offset !== offset) return null;
  if (f.kind === 'swiglu') return f.length === rows * cols && rows <= MAX_FOLD_ROWS ? f : null;
  if (f.kind === 'rope') return f.rows === rows && f.cols === cols ? f : null;
  return f.rows === rows && f.cols === cols && workgroups <= MAX_FOLD_WORKGROUPS ? f : null;
}

/** Uniform fields of a folding kernel (after its own). */
export const FOLD_FIELDS = 'fKind: u32, fEps: f32, fAOff: u32, fBOff: u32, fHasA: u32, fHasB: u32, fCols: u32';

const KIND = { layer: 1, rms: 2, swiglu: 3 } as const;

/** A producer the products fold (RoPE is folded by the cached attention alone: attention_cached.ts). */
export type ProductFold = Exclude<FoldedInput, { kind: 'rope' }>;

/** The pending producer of a product's input, or null (as foldedInput; RoPE's rotation is left to record). */
export function foldedProductInput(ctx: GpuContext, buffer: GPUBuffer, offset: number, rows: number, cols: number, workgroups: number): ProductFold | null {
  const f = foldedInput(ctx, buffer, offset, rows, cols, workgroups);
  return f && f.kind !== 'rope' ? f : null;
}

/** The values of FOLD_FIELDS, for a reader of rows of `cols` values. */
export function foldParams(f: ProductFold, cols: number): Param[] {
  if (f.kind === 'swiglu') return [u32(KIND.swiglu), f32(0), u32(f.up.offset), u32(0), u32(1), u32(0), u32(cols)];
  return [u32(KIND[f.kind]), f32(f.eps), u32(f.weight?.offset ?? 0), u32(f.bias?.offset ?? 0), u32(f.weight ? 1 : 0), u32(f.bias ? 1 : 0), u32(cols)];
}

/** The buffers of the two bindings foldPrologue declares: a norm's weight and bias, or SwiGLU's up. */
export const foldBuffers = (f: ProductFold): [GPUBuffer | null, GPUBuffer | null] =>
  f.kind === 'swiglu' ? [f.up.buffer, null] : [f.weight?.buffer ?? null, f.bias?.buffer ?? null];

/**
 * WGSL for a kernel that folds a producer into its reads of the input (which
 * it binds to `input`, the fold's own input span): bindings `binding` and
 * binding + 1 (foldBuffers), and
 *   fn foldStats(lid: u32, args…)  — every invocation of the workgroup (`wg` of them) calls it first: for a
 *                                    norm it computes the mean and 1/σ of rows rowAt(0) … rowAt(rows − 1);
 *   fn folded(r: u32, row: u32, k: u32, a: f32) -> f32 — element k of the r-th of those rows (row index `row`),
 *                                    a its value in the bound input;
 *   fn folded4(r: u32, row: u32, k: u32, a: vec4<f32>) -> vec4<f32> — elements k … k + 3.
 * `rows` is a WGSL expression uniform across the workgroup (at most 8),
 * `rowAt(r)` the row index of the r-th, `at(row, k)` an element of the bound
 * input, and `cols` the row's length; `args` declares foldStats's parameters
 * after lid that these use (a kernel's locals). The Params struct must hold
 * FOLD_FIELDS.
 */
export function foldPrologue(o: { binding: number; wg: number; rows: string; rowAt: (r: string) => string; at: (row: string, k: string) => string; cols: string; args?: string }): string {
  return /* wgsl */ `
@group(0) @binding(${o.binding}) var<storage, read> foldA: array<f32>; // a norm's weight, or SwiGLU's up
@group(0) @binding(${o.binding + 1}) var<storage, read> foldB: array<f32>; // a norm's bias
var<workgroup> foldRed: array<f32, ${o.wg}>;
var<workgroup> foldStat: array<vec2<f32>, ${MAX_FOLD_ROWS}>;

fn foldSum(v: f32, lid: u32) -> f32 {
  foldRed[lid] = v;
  workgroupBarrier();
  for (var s = ${o.wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { foldRed[lid] += foldRed[lid + s]; }
    workgroupBarrier();
  }
  let total = foldRed[0];
  workgroupBarrier(); // foldRed is reused by the next call
  return total;
}

fn foldStats(lid: u32${o.args ? `, ${o.args}` : ''}) {
  if (p.fKind == ${KIND.swiglu}u) { return; } // uniform: no statistics to compute
  for (var r = 0u; r < ${o.rows}; r++) {
    let row = ${o.rowAt('r')};
    var m = 0.0;
    if (p.fKind == ${KIND.layer}u) {
      var s = 0.0;
      for (var k = lid; k < ${o.cols}; k += ${o.wg}u) { s += ${o.at('row', 'k')}; }
      m = foldSum(s, lid) / f32(${o.cols});
    }
    var v = 0.0;
    for (var k = lid; k < ${o.cols}; k += ${o.wg}u) { let d = ${o.at('row', 'k')} - m; v += d * d; }
    let rs = 1.0 / sqrt(foldSum(v, lid) / f32(${o.cols}) + p.fEps);
    if (lid == 0u) { foldStat[r] = vec2<f32>(m, rs); }
  }
  workgroupBarrier();
}

fn folded(r: u32, row: u32, k: u32, a: f32) -> f32 {
  if (p.fKind == ${KIND.swiglu}u) { return a * (1.0 / (1.0 + exp(-a))) * foldA[p.fAOff + row * p.fCols + k]; }
  let st = foldStat[r];
  var y = (a - st.x) * st.y;
  if (p.fHasA != 0u) { y *= foldA[p.fAOff + k]; }
  if (p.fHasB != 0u) { y += foldB[p.fBOff + k]; }
  return y;
}

fn folded4(r: u32, row: u32, k: u32, a: vec4<f32>) -> vec4<f32> {
  if (p.fKind == ${KIND.swiglu}u) {
    let o = p.fAOff + row * p.fCols + k;
    return a * (1.0 / (1.0 + exp(-a))) * vec4<f32>(foldA[o], foldA[o + 1u], foldA[o + 2u], foldA[o + 3u]);
  }
  let st = foldStat[r];
  var y = (a - st.x) * st.y;
  if (p.fHasA != 0u) { let o = p.fAOff + k; y *= vec4<f32>(foldA[o], foldA[o + 1u], foldA[o + 2u], foldA[o + 3u]); }
  if (p.fHasB != 0u) { let o = p.fBOff + k; y += vec4<f32>(foldB[o], foldB[o + 1u], foldB[o + 2u], foldB[o + 3u]); }
  return y;
}`;
}
