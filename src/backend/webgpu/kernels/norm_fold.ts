import { envCount, f32, type DeferredWork, type GpuContext, type GpuSpan, type Param, u32 } from '../device.js';

/**
 * A decode step's norm, folded into the product that reads it.
 *
 * Decoding one token, a pre-norm block runs norm → product twice (ln_1 then
 * the q·k·v product, ln_2 then the up projection; Llama's q, k, v and gate,
 * up each read the same normed x), and the model's last norm feeds the
 * vocabulary head: 25 of the 89 dispatches of a 124M GPT-2 token are norms of
 * a single row. A GPU spends about as long launching such a kernel as running
 * it, and the host about 10 µs recording it.
 *
 * So a LayerNorm or RMSNorm of at most `normFoldRows()` rows is deferred
 * (`GpuContext.defer`) instead of recorded. A product that can fold it — the
 * skinny fp32 product (gemm_skinny.ts), the int8 product (int8.ts), the
 * activation quantizer of the GGUF products (linear_quantized.ts) — finds it
 * (`foldedNorm`), binds the un-normed x and the norm's weight and bias in
 * place of the normed rows, and normalises each row as it reads it: the
 * workgroup first computes each row's mean and 1/σ with the formulas of
 * layernorm.ts and rmsnorm.ts (mean, then the variance from a second pass
 * over x − mean; RMSNorm's mean of squares), a handful of barriers over a
 * row of a few thousand values. Every reader of the norm recomputes those
 * statistics; at one row and a few thousand workgroups that is cheaper than
 * a dispatch (`MAX_FOLD_WORKGROUPS`: wider readers leave the norm its own).
 *
 * Anything else that touches the normed rows (a read-back, an elementwise
 * kernel, a backward pass reading the saved mean and rstd) records the norm
 * first, through GpuContext's deferral, so results never change; a decode
 * step that releases the normed rows unread drops it. js is the reference:
 * the folded products are tested against js's norm then product.
 */

/** ATTN_WEBGPU_NORM_FOLD: the most rows a norm may have to be folded (0 = never), 8 by default (the skinny product's rows). */
const initialFoldRows = () => envCount('ATTN_WEBGPU_NORM_FOLD', 8, 'rows');

let foldRows: number | null = null;

/** Set the most rows a folded norm may have (0: off; null: back to ATTN_WEBGPU_NORM_FOLD or the default). */
export function setNormFoldRows(n: number | null): void {
  foldRows = n === null ? null : Math.min(n, MAX_FOLD_ROWS);
}

/** Rows whose statistics a folding kernel keeps in workgroup memory. */
export const MAX_FOLD_ROWS = 8;

const normFoldRows = () => (foldRows ??= Math.min(initialFoldRows(), MAX_FOLD_ROWS));

/** A norm a product may fold: out[rows, cols] = norm(x[rows, cols])·weight (+ bias). */
export interface FoldedNorm {
  kind: 'layer' | 'rms';
  x: GpuSpan;
  weight: GpuSpan | null;
  bias: GpuSpan | null;
  eps: number;
  rows: number;
  cols: number;
  out: GpuSpan;
}

const norms = new WeakMap<DeferredWork, FoldedNorm>();

/**
 * Defer `run` (the norm's own kernel, writing `norm.out` and the saved
 * statistics `stats`) when the norm is small enough to fold and writes
 * none of its inputs; false when it must be recorded now.
 */
export function deferNorm(ctx: GpuContext, norm: FoldedNorm, stats: readonly GpuSpan[], run: () => void): boolean {
  if (norm.rows === 0 || norm.rows > normFoldRows()) return false;
  const inputs = [norm.x.buffer, norm.weight?.buffer ?? null, norm.bias?.buffer ?? null];
  const outputs = [norm.out.buffer, ...stats.map((s) => s.buffer)];
  if (outputs.some((b) => inputs.includes(b)) || new Set(outputs).size !== outputs.length) return false;
  const work: DeferredWork = { outputs, inputs, run };
  norms.set(work, norm);
  ctx.defer(work);
  return true;
}

/**
 * Workgroups of a reader at most for it to fold a norm. Each of them
 * recomputes the statistics (two passes over the rows) and reads the norm's
 * weight and bias beside its operand: work that grows with the workgroups
 * while the dispatch it saves does not. A vocabulary head (50 257 columns of
 * 124M, 49 152 of SmolLM2) is past it, and its norm runs on its own.
 */
export const MAX_FOLD_WORKGROUPS = 4096;

/**
 * The pending norm whose output is exactly rows × cols values from element
 * `offset` of `buffer`, for a reader of `workgroups` workgroups to fold in;
 * null when there is none or the reader is too wide.
 */
export function foldedNorm(ctx: GpuContext, buffer: GPUBuffer, offset: number, rows: number, cols: number, workgroups: number): FoldedNorm | null {
  if (workgroups > MAX_FOLD_WORKGROUPS) return null;
  const work = ctx.deferredWriting(buffer);
  const n = work ? norms.get(work) : undefined;
  if (!n || n.out.offset !== offset || n.rows !== rows || n.cols !== cols) return null;
  return n;
}

/** Uniform fields of a folding kernel (after its own). */
export const NORM_FIELDS = 'nKind: u32, nEps: f32, nWOff: u32, nBOff: u32, nHasW: u32, nHasB: u32';

/** The values of NORM_FIELDS (kind 0: no norm, for the same kernel run unfolded). */
export function normParams(n: FoldedNorm | null): Param[] {
  return [u32(n ? (n.kind === 'layer' ? 1 : 2) : 0), f32(n?.eps ?? 0), u32(n?.weight?.offset ?? 0), u32(n?.bias?.offset ?? 0), u32(n?.weight ? 1 : 0), u32(n?.bias ? 1 : 0)];
}

/** The norm's weight and bias buffers, for the two bindings normPrologue declares. */
export const normBuffers = (n: FoldedNorm): [GPUBuffer | null, GPUBuffer | null] => [n.weight?.buffer ?? null, n.bias?.buffer ?? null];

/**
 * WGSL for a kernel that folds a norm: the weight and bias bindings at
 * `binding` and binding + 1, and
 *   fn normStats(lid: u32, args…)                — every invocation of the workgroup (`wg` of them) calls it first: it
 *                                                  computes the mean and 1/σ of rows rowAt(0) … rowAt(rows − 1);
 *   fn normed(r: u32, k: u32, a: f32) -> f32     — element k of the r-th of those rows, a its raw value, normalised;
 *   fn normed4(r: u32, k: u32, a: vec4<f32>) -> vec4<f32> — elements k … k + 3.
 * `rows` is a WGSL expression uniform across the workgroup (at most 8),
 * `rowAt(r)` the row index of the r-th, `at(row, k)` a raw element of x, and
 * `cols` the row's length; `args` declares normStats's parameters after lid
 * that these use (a kernel's locals). The Params struct must hold NORM_FIELDS.
 */
export function normPrologue(o: { binding: number; wg: number; rows: string; rowAt: (r: string) => string; at: (row: string, k: string) => string; cols: string; args?: string }): string {
  return /* wgsl */ `
@group(0) @binding(${o.binding}) var<storage, read> normW: array<f32>;
@group(0) @binding(${o.binding + 1}) var<storage, read> normB: array<f32>;
var<workgroup> normRed: array<f32, ${o.wg}>;
var<workgroup> normStat: array<vec2<f32>, ${MAX_FOLD_ROWS}>;

fn normSum(v: f32, lid: u32) -> f32 {
  normRed[lid] = v;
  workgroupBarrier();
  for (var s = ${o.wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { normRed[lid] += normRed[lid + s]; }
    workgroupBarrier();
  }
  let total = normRed[0];
  workgroupBarrier(); // normRed is reused by the next call
  return total;
}

fn normStats(lid: u32${o.args ? `, ${o.args}` : ''}) {
  for (var r = 0u; r < ${o.rows}; r++) {
    let row = ${o.rowAt('r')};
    var m = 0.0;
    if (p.nKind == 1u) {
      var s = 0.0;
      for (var k = lid; k < ${o.cols}; k += ${o.wg}u) { s += ${o.at('row', 'k')}; }
      m = normSum(s, lid) / f32(${o.cols});
    }
    var v = 0.0;
    for (var k = lid; k < ${o.cols}; k += ${o.wg}u) { let d = ${o.at('row', 'k')} - m; v += d * d; }
    let rs = 1.0 / sqrt(normSum(v, lid) / f32(${o.cols}) + p.nEps);
    if (lid == 0u) { normStat[r] = vec2<f32>(m, rs); }
  }
  workgroupBarrier();
}

fn normed(r: u32, k: u32, a: f32) -> f32 {
  let st = normStat[r];
  var y = (a - st.x) * st.y;
  if (p.nHasW != 0u) { y *= normW[p.nWOff + k]; }
  if (p.nHasB != 0u) { y += normB[p.nBOff + k]; }
  return y;
}

fn normed4(r: u32, k: u32, a: vec4<f32>) -> vec4<f32> {
  let st = normStat[r];
  var y = (a - st.x) * st.y;
  if (p.nHasW != 0u) { let o = p.nWOff + k; y *= vec4<f32>(normW[o], normW[o + 1u], normW[o + 2u], normW[o + 3u]); }
  if (p.nHasB != 0u) { let o = p.nBOff + k; y += vec4<f32>(normB[o], normB[o + 1u], normB[o + 2u], normB[o + 3u]); }
  return y;
}`;
}
