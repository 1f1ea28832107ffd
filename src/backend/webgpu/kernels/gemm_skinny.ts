import { envCount, f32, type GpuContext, type KernelSource, u32 } from '../device.js';
import { addendAt, EPILOGUE_FIELDS, EPILOGUE_FN, epilogueBindings, epilogueParams } from './gemm_epilogue.js';
import { grid } from './grid.js';
import { aligned, variants } from './variants.js';
import type { GpuGemmArgs } from './gemm.js';
import { FOLD_FIELDS, foldBuffers, foldedProductInput, foldParams, foldPrologue } from './input_fold.js';

/**
 * C = act(alpha·op(A)·Bᵀ (+ C) (+ bias)) (+ addend) when op(A) has only a few rows and B is
 * stored [N, K] (transB): a layer's product while decoding, x[1, K]·Wᵀ.
 *
 * The tiled kernel (gemm.ts) is built for many rows: at M = 1 a 32×32 block
 * wastes 31 of its 32 rows, and a 768-wide output makes only 24 blocks, each
 * walking all of K alone with a barrier per K tile. A GPU with a hundred
 * cores then waits on a handful of them, and the product reads its weights at
 * a small fraction of the memory's bandwidth. Here every output column gets
 * its own group of T invocations (T = 64, a whole workgroup, when K is long;
 * down to 8 when it is short, so that no invocation idles, with 64/T columns
 * per workgroup):
 *
 * - the T invocations split row n of B (contiguous along K: 16-byte loads
 *   when aligned, consecutive invocations on consecutive vec4s), so each
 *   weight is read once, coalesced, and a product of N columns spreads over
 *   N groups;
 * - each weight read is multiplied with up to SK_ROWS rows of A, held in
 *   named accumulators (unrolled here, as in gemm.ts, so that they stay in
 *   registers);
 * - a tree in workgroup memory adds each group's partial sums, all rows at
 *   once, and the group's invocation r stores row r: alpha, accumulation and
 *   the epilogue (gemm_epilogue.ts) as gemm.ts applies them.
 *
 * With `fold`, A holds the input of a pending producer of A (a decode step's
 * LayerNorm, RMSNorm or SwiGLU product) and the kernel computes each value of
 * A as it reads it (input_fold.ts): one dispatch fewer.
 *
 * More than SK_ROWS rows run as row blocks (workgroup z is batch entry ×
 * row block), each reading B again. `gemm()` sends a product here when
 * `useSkinny` says so; the js GEMM is the reference, as for the tiled kernel.
 */

/** Invocations per workgroup (one column of C, or 64/T columns of T invocations each). */
const SK_WG = 64;
/**
 * Invocations per workgroup that folds a producer (input_fold.ts): each workgroup
 * computes its rows' statistics (for a norm) before its columns' dot products, so it
 * takes four times the columns, and that work is shared by four times the
 * invocations.
 */
const SK_WG_FOLD = 256;

const workgroupSize = (fold: boolean) => (fold ? SK_WG_FOLD : SK_WG);

/** Rows of op(A) a workgroup multiplies each weight with. */
export const SK_ROWS = 8;

/**
 * The most rows sent here instead of the tiled kernel: ATTN_WEBGPU_SKINNY
 * (0 turns the path off, for an A/B on a GPU), SK_ROWS by default.
 */
const initialMaxRows = () => envCount('ATTN_WEBGPU_SKINNY', SK_ROWS, 'rows');

let maxRows: number | null = null;

/** Set the most rows the skinny path takes (0: off; null: back to ATTN_WEBGPU_SKINNY or the default). */
export function setSkinnyRows(n: number | null): void {
  maxRows = n;
}

/** Whether a product goes to the skinny kernel: few rows, B stored [N, K], and more than one column. */
export function useSkinny(g: Pick<GpuGemmArgs, 'M' | 'N' | 'transB'>): boolean {
  maxRows ??= initialMaxRows();
  return g.transB && g.M <= maxRows && g.N > 1;
}

interface Variant {
  /** Rows per workgroup (compile-time, 1 … SK_ROWS). */
  R: number;
  /** Invocations per column: 8, 16, 32 or 64 (≥ R: its first R store the rows). */
  T: number;
  transA: boolean;
  /** B (and K) line up on 16 bytes: B bound as vec4s, the loop walks K four at a time. */
  vecB: boolean;
  /** A's rows line up too (A not transposed): A bound as vec4s. */
  vecA: boolean;
  /** A is the input of a folded producer (not transposed): each value is computed as it is read (input_fold.ts). */
  fold: boolean;
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);

function source(v: Variant): KernelSource {
  const { R, T } = v;
  const WG = workgroupSize(v.fold);
  // Row r of this block, clamped into op(A) so that a partial last block reads real memory (its sums are never stored).
  const rows = range(R).map((r) => `let row${r} = min(m0 + ${r}u, p.M - 1u);`);
  // Element (m, k) of op(A), as a scalar.
  const aAt = (m: string, k: string) => (v.transA ? `A[aBase + (${k}) * p.lda + ${m}]` : `A[aBase + ${m} * p.lda + ${k}]`);
  // Element (m, k) of A as the product reads it: computed from the producer's input when one is folded in.
  const aRead = (r: number, k: string) => (v.fold ? `folded(${r}u, row${r}, ${k}, ${aAt(`row${r}`, k)})` : aAt(`row${r}`, k));
  let loop: string;
  if (v.vecB) {
    const raw = (r: number) =>
      v.vecA ? `A[aBase + row${r} * p.lda + k4]` : `vec4<f32>(${range(4).map((c) => aAt(`row${r}`, `4u * k4 + ${c}u`)).join(', ')})`;
    const aVec = (r: number) => (v.fold ? `folded4(${r}u, row${r}, 4u * k4, ${raw(r)})` : raw(r));
    loop = `for (var k4 = lane; k4 < p.K / 4u; k4 += ${T}u) {
    let w = B[bRow + k4];
    ${range(R).map((r) => `s${r} += dot(${aVec(r)}, w);`).join('\n    ')}
  }`;
  } else {
    loop = `for (var k = lane; k < p.K; k += ${T}u) {
    let w = B[bRow + k];
    ${range(R).map((r) => `s${r} = fma(${aRead(r, 'k')}, w, s${r});`).join('\n    ')}
  }`;
  }
  const code = /* wgsl */ `
struct Params {
  M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32,
  aOff: u32, bOff: u32, cOff: u32, strideA: u32, strideB: u32, strideC: u32,
  accumulate: u32, alpha: f32, rowBlocks: u32, ${EPILOGUE_FIELDS},${v.fold ? ` ${FOLD_FIELDS},` : ''}
}
@group(0) @binding(0) var<storage, read> A: array<${v.vecA ? 'vec4<f32>' : 'f32'}>;
@group(0) @binding(1) var<storage, read> B: array<${v.vecB ? 'vec4<f32>' : 'f32'}>;
${epilogueBindings(2)}
@group(0) @binding(4) var<storage, read_write> C: array<f32>;
@group(0) @binding(${v.fold ? 7 : 5}) var<uniform> p: Params;
${EPILOGUE_FN}
${v.fold ? foldPrologue({ binding: 5, wg: WG, rows: `${R}u`, rowAt: (r) => `min(m0 + ${r}, p.M - 1u)`, at: (row, k) => (v.vecA ? `A[aBase + (${row}) * p.lda + (${k}) / 4u][(${k}) % 4u]` : `A[aBase + (${row}) * p.lda + (${k})]`), cols: 'p.K', args: 'm0: u32, aBase: u32' }) : ''}

var<workgroup> red: array<f32, ${R * WG}>;

@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let first = (wid.x + wid.y * nwg.x) * ${WG / T}u;
  if (first >= p.N) { return; } // uniform across the workgroup: the barriers below are safe
  let lane = lid % ${T}u;
  let live = first + lid / ${T}u < p.N;
  let n = min(first + lid / ${T}u, p.N - 1u); // a column past N reads the last one's row; its sums are never stored
  let batch = wid.z / p.rowBlocks;
  let m0 = (wid.z % p.rowBlocks) * ${R}u;
  // Offsets, leading dimensions and strides are in units of each binding's element (vec4 when vectorised).
  let aBase = p.aOff + batch * p.strideA;
  let bRow = p.bOff + batch * p.strideB + n * p.ldb;
  ${rows.join('\n  ')}
  ${v.fold ? 'foldStats(lid, m0, aBase);' : ''}
  ${range(R).map((r) => `var s${r} = 0.0;`).join(' ')}
  ${loop}
  ${range(R).map((r) => `red[${r * WG}u + lid] = s${r};`).join('\n  ')}
  workgroupBarrier();
  for (var s = ${T / 2}u; s > 0u; s = s >> 1u) {
    if (lane < s) {
      ${range(R).map((r) => `red[${r * WG}u + lid] += red[${r * WG}u + lid + s];`).join('\n      ')}
    }
    workgroupBarrier();
  }
  let m = m0 + lane;
  if (live && lane < ${R}u && m < p.M) {
    let i = p.cOff + batch * p.strideC + m * p.ldc + n;
    var x = p.alpha * red[lane * ${WG}u + lid - lane];
    if (p.accumulate != 0u) { x = C[i] + x; }
    C[i] = epilogue(x, n, ${addendAt('batch', 'm', 'n')});
  }
}`;
  return {
    name: `gemmSkinny_r${R}_t${T}${v.transA ? '_T' : ''}${v.vecB ? '_vb' : ''}${v.vecA ? '_va' : ''}${v.fold ? '_fold' : ''}`,
    code,
    bindings: v.fold ? ['read', 'read', 'read', 'read', 'rw', 'read', 'read'] : ['read', 'read', 'read', 'read', 'rw'],
  };
}

const kernel = variants((v: Variant) => `${v.R},${v.T}${v.transA}${v.vecB}${v.vecA}${v.fold}`, source);

/**
 * Record C = act(alpha·op(A)·Bᵀ (+ C) (+ bias)) (+ addend) with a group of
 * invocations per column of C (B stored [N, K]). When A is the output of a
 * pending producer (a decode step's norm or SwiGLU, input_fold.ts), A is
 * computed from the producer's input as it is read.
 */
export function gemmSkinny(ctx: GpuContext, g: GpuGemmArgs): void {
  const { M, N, K, batch } = g;
  if (!g.transB) throw new Error('gemmSkinny: B must be stored [N, K] (transB)');
  if (M === 0 || N === 0 || batch === 0) return;
  const R = Math.min(M, SK_ROWS);
  const rowBlocks = Math.ceil(M / R);
  const vecB = g.b.size % 16 === 0 && aligned(g.bOffset, g.ldb, g.strideB, K);
  // Invocations per column: about two loads of B each when K is short, a whole workgroup when it is long.
  const loads = vecB ? K / 4 : K;
  const T = Math.min(SK_WG, Math.max(8, 2 ** Math.ceil(Math.log2(Math.max(1, Math.ceil(loads / 2))))));
  const fold = !g.transA && batch === 1 && g.lda === K ? foldedProductInput(ctx, g.a, g.aOffset, M, K, Math.ceil(N / (SK_WG_FOLD / T))) : null;
  const a = fold ? fold.input.buffer : g.a;
  const aOffset = fold ? fold.input.offset : g.aOffset;
  const vecA = vecB && !g.transA && a.size % 16 === 0 && aligned(aOffset, g.lda, g.strideA);
  const wa = vecA ? 4 : 1;
  const wb = vecB ? 4 : 1;
  // Columns fold onto a second grid dimension past the device's per-dimension limit (a 128 000-token vocabulary).
  const [gx, gy] = grid(ctx, N, workgroupSize(fold !== null) / T);
  ctx.dispatch(
    kernel({ R, T, transA: g.transA, vecB, vecA, fold: fold !== null }),
    fold ? [a, g.b, g.bias, g.addend?.buffer, g.c, ...foldBuffers(fold)] : [a, g.b, g.bias, g.addend?.buffer, g.c],
    [
      u32(M), u32(N), u32(K), u32(g.lda / wa), u32(g.ldb / wb), u32(g.ldc),
      u32(aOffset / wa), u32(g.bOffset / wb), u32(g.cOffset), u32(g.strideA / wa), u32(g.strideB / wb), u32(g.strideC),
      u32(g.accumulate ? 1 : 0), f32(g.alpha), u32(rowBlocks), ...epilogueParams(g), ...(fold ? foldParams(fold, K) : []),
    ],
    [gx, gy, batch * rowBlocks],
  );
}
