import type { AttentionDims } from '../../backend.js';
import { envCount, f32, type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { DROP_BITS, dropThreshold } from './dropout.js';
import { FLAT_INDEX, grid, WG } from './grid.js';
import { chunksToReach, splitTarget } from './gemm_split_k.js';

/**
 * Fused ("flash") attention forward and backward for the whole AttentionDims
 * contract (js/attention.ts is the reference): causal with Tq ≠ Tk, key
 * padding, grouped KV heads, packed q/k/v row strides, dropout on the
 * weights with js's counter-based mask.
 *
 * Forward: a workgroup takes 64 queries of one (batch row, head), one query
 * per invocation. It walks the keys in tiles that the workgroup copies into
 * workgroup memory together (each K/V row read from memory once per 64
 * queries), and keeps for its query only a running maximum m, a running sum
 * l of exp(s − m) and the output accumulated so far, rescaled whenever m
 * grows ("online softmax"). The Tq×Tk weights never exist; the log-sum-exp
 * m + log l of each query is saved for the backward pass.
 *
 * Backward recomputes the weights p = exp(s − lse) tile by tile. With
 * Dᵢ = dOᵢ·Oᵢ (= Σⱼ pᵢⱼ·dpᵢⱼ, the softmax-backward term, dropout included):
 *   dpᵢⱼ = (dOᵢ·vⱼ)·maskᵢⱼ,  dsᵢⱼ = pᵢⱼ·(dpᵢⱼ − Dᵢ)
 *   dqᵢ = scale·Σⱼ dsᵢⱼ·kⱼ             (one invocation per query)
 *   dkⱼ = scale·Σᵢ dsᵢⱼ·qᵢ, dvⱼ = Σᵢ pᵢⱼ·maskᵢⱼ·dOᵢ   (one invocation per key,
 *   looping over the query heads that share its KV head)
 * Every sum is owned by one invocation: deterministic, and no float atomics.
 *
 * Split over the walked axis (flash-decoding's split, for training): one
 * invocation per query (or key) is B·nHead·T invocations — config M's
 * 24 576, G's 12 288 — where a big GPU holds a quarter of a million at once.
 * When a pass has too few (`attentionSplit`), its grid gets a third
 * dimension: workgroup z walks only the z-th chunk of the keys (forward,
 * dq) or of the queries (dk, dv) and stores a partial result in a scratch.
 * The forward's partial outputs are each normalised by their own sum, with
 * their own log-sum-exp, and a second kernel (COMBINE) weighs them by
 * exp(lse_z − lse); the gradients' partials are plain sums, added in chunk
 * order by split-K's sum (gemm_split_k.ts). Still deterministic.
 *
 * Lanes: where the device's subgroups hold aligned quads (GpuContext.
 * subgroupQuads) and D is a multiple of 16, a query (forward, dq) or key
 * (dk/dv) gets four invocations, each holding a quarter of its rows of D
 * values; a dot product of two rows is four partial sums added by two
 * subgroup shuffles, which leave the same bits in all four. One invocation
 * per row held 2 (forward), 3 (dq) or 4 (dk/dv) rows of 64 floats at
 * GPT-2's D = 64: up to 256 registers, more than an NVIDIA invocation has,
 * and few invocations resident. ATTN_WEBGPU_ATTENTION_LANES=1 keeps one
 * invocation per row.
 *
 * An invocation's rows of D values (its query, output, gradients) are held in
 * D/4 named vec4 registers (D/1 scalars when D is not a multiple of 4), and
 * every loop over D is unrolled here in TypeScript, as gemm.ts does: an array
 * indexed by a loop variable gets bounds clamps from the robustness pass and
 * may land in slow local memory. The shared K/V (Q/dO) tiles are vec4s, so a
 * workgroup-memory read feeds four multiply-adds.
 */

/** GPU form of AttentionDims: the padding flags are a span of u32 (one per key, B·Tk). */
export interface GpuAttentionDims extends Omit<AttentionDims, 'keyPadding'> {
  keyPadding?: GpuSpan | null;
}

/** Queries (forward, dq) or keys (dk/dv) per workgroup. */
const BLOCK = 64;

/** Rows of the tile the workgroup shares: two [rows, headDim] tiles in at most 16 KB of workgroup memory. */
const tileRows = (D: number) => Math.max(1, Math.min(32, Math.floor(2048 / D)));

/** Uniform fields shared by the three kernels; offsets are in elements. */
const PARAMS = /* wgsl */ `
struct Params {
  B: u32, Tq: u32, Tk: u32, nHead: u32, group: u32, qs: u32, ks: u32, causal: u32, scale: f32,
  hasPad: u32, hasDrop: u32, seed: u32, threshold: u32, keep: f32,
  qOff: u32, kOff: u32, vOff: u32, oOff: u32, dOff: u32, padOff: u32, lseOff: u32, dxOff: u32, dvOff: u32, accumulate: u32,
  chunk: u32, zStride: u32, lseZ: u32, xs: u32,
}`;

/** WGSL helpers: whether query i of row b sees key j, and the dropout factor of weight (b, h, i, j). */
const MASKS = /* wgsl */ `
fn visible(b: u32, i: u32, j: u32) -> bool {
  if (p.causal != 0u && i32(j) > i32(i) + i32(p.Tk) - i32(p.Tq)) { return false; }
  if (p.hasPad != 0u && pad[p.padOff + b * p.Tk + j] != 0u) { return false; }
  return true;
}
${DROP_BITS}
fn dropFactor(b: u32, h: u32, i: u32, j: u32) -> f32 {
  if (p.hasDrop == 0u) { return 1.0; }
  let index = ((b * p.nHead + h) * p.Tq + i) * p.Tk + j;
  return select(p.keep, 0.0, dropBits(p.seed, index) < p.threshold);
}
/** The last key any query of the block starting at i0 may see, plus one. */
fn keyEnd(i0: u32) -> u32 {
  if (p.causal == 0u) { return p.Tk; }
  let last = i32(min(i0 + ${BLOCK}u, p.Tq)) - 1 + i32(p.Tk) - i32(p.Tq);
  return u32(clamp(last + 1, 0, i32(p.Tk)));
}
const LOWEST: f32 = -0x1.fffffep+127f;
`;

/** How an invocation holds a row of D values: D/w named registers of w lanes (vec4 when D is a multiple of 4). */
interface Lanes {
  w: 1 | 4;
  /** Registers per row. */
  n: number;
  ty: string;
}

const lanesOf = (D: number): Lanes => (D % 4 === 0 ? { w: 4, n: D / 4, ty: 'vec4<f32>' } : { w: 1, n: D, ty: 'f32' });

/** `f(i)` for each register i of a row, joined into unrolled WGSL statements. */
const unrolled = (L: Lanes, f: (i: number) => string, sep = '\n    ') => Array.from({ length: L.n }, (_, i) => f(i)).join(sep);

/** WGSL: register i of the row that starts at element `at` of the scalar array `arr`. */
function load(L: Lanes, arr: string, at: string, i: number): string {
  if (L.w === 1) return `${arr}[${at} + ${i}u]`;
  return `vec4<f32>(${[0, 1, 2, 3].map((c) => `${arr}[${at} + ${4 * i + c}u]`).join(', ')})`;
}

/** WGSL: `f(element, value)` for each of the w lanes of register `reg` (the i-th of its row). */
function lanesOfReg(L: Lanes, reg: string, i: number, f: (e: string, v: string) => string): string {
  if (L.w === 1) return f(`${i}u`, reg);
  return [0, 1, 2, 3].map((c) => f(`${4 * i + c}u`, `${reg}[${c}]`)).join(' ');
}

/** WGSL: s += row a · row b, a and b given as register-name makers. */
const dotInto = (L: Lanes, s: string, a: (i: number) => string, b: (i: number) => string) =>
  unrolled(L, (i) => (L.w === 4 ? `${s} += dot(${a(i)}, ${b(i)});` : `${s} = fma(${a(i)}, ${b(i)}, ${s});`), ' ');

/** WGSL declaring the named registers `name`0 … of a row, zeroed. */
const declare = (L: Lanes, name: string) => unrolled(L, (i) => `var ${name}${i} = ${L.ty}(0.0);`, ' ');

/** WGSL: the workgroup (of `size` invocations) copies keys j0 … j0 + BK − 1 of KV head g into Ks and Vs (zeros past Tk), a register's lanes per element. */
function loadKvTile(BK: number, L: Lanes, size: number): string {
  const D = L.n * L.w;
  return /* wgsl */ `for (var t = lid; t < ${BK * L.n}u; t += ${size}u) {
      let j = j0 + t / ${L.n}u;
      var kv = ${L.ty}(0.0);
      var vv = ${L.ty}(0.0);
      if (j < p.Tk) {
        let at = (b * p.Tk + j) * p.ks + g * ${D}u + (t % ${L.n}u) * ${L.w}u;
        kv = ${load(L, 'k', 'p.kOff + at', 0)};
        vv = ${load(L, 'v', 'p.vOff + at', 0)};
      }
      Ks[t] = kv;
      Vs[t] = vv;
    }
    workgroupBarrier();`;
}

/**
 * How a pass is split (see the header): workgroup z walks `chunk` keys or
 * queries from z·chunk; `zStride` and `lseZ` are the elements between the
 * partial results of consecutive z; `xs` is the row stride of the gradient
 * stores (dq's, or dk's and dv's).
 */
interface Split {
  chunk: number;
  zStride: number;
  lseZ: number;
  xs: number;
}

/**
 * How a kernel shares each row among Q invocations (see the header): S is
 * one invocation's slice of the row's registers, `wgsl` declares `slot` (the
 * query or key of the workgroup) and `lane`, `at` is the slice's first
 * element in a row of D and `reg` its first register in a shared tile's row.
 */
interface Share {
  Q: 1 | 4;
  S: Lanes;
  size: number;
  wgsl: string;
  at: string;
  reg: string;
  /** WGSL ending a dot product's partial sums `x` (f32 or vec2) over the quad. */
  sum: (x: string) => string;
}

function share(L: Lanes, Q: 1 | 4): Share {
  if (Q === 1) return { Q, S: L, size: BLOCK, wgsl: 'let slot = lid;', at: '', reg: '', sum: () => '' };
  return {
    Q, S: { ...L, n: L.n / Q }, size: BLOCK * Q,
    wgsl: `let slot = lid / ${Q}u;\n  let lane = lid % ${Q}u;`,
    at: ` + lane * ${(L.n * L.w) / Q}u`,
    reg: ` + lane * ${L.n / Q}u`,
    sum: (x) => `${x} += subgroupShuffleXor(${x}, 1u); ${x} += subgroupShuffleXor(${x}, 2u);`,
  };
}

/** WGSL before the rest of a kernel that shares rows: subgroups, whose calls sit where the analysis cannot see that a quad's four take one path. */
const enableFor = (Q: 1 | 4) => (Q === 1 ? '' : 'enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n');

let lanesSetting: number | null = null;

/** Invocations per row where the device and D allow more than one: 4 (ATTN_WEBGPU_ATTENTION_LANES, the default), or 1 for any value under 4. Returns the previous setting. */
export function setAttentionLanes(lanes: number): number {
  const was = (lanesSetting ??= envCount('ATTN_WEBGPU_ATTENTION_LANES', 4, 'lanes'));
  lanesSetting = lanes;
  return was;
}

/** The lanes a kernel of head size D uses on this device. */
export function attentionLanes(ctx: GpuContext, D: number): 1 | 4 {
  const want = (lanesSetting ??= envCount('ATTN_WEBGPU_ATTENTION_LANES', 4, 'lanes'));
  return want >= 4 && ctx.subgroupQuads && D % 16 === 0 ? 4 : 1;
}

function params(d: GpuAttentionDims, offsets: { q: number; k: number; v: number; o: number; d: number; lse: number; dx: number; dv: number }, accumulate: boolean, split: Split) {
  const C = d.nHead * d.headDim;
  const drop = d.dropout && d.dropout.p > 0 ? d.dropout : null;
  return [
    u32(d.B), u32(d.Tq), u32(d.Tk), u32(d.nHead), u32(d.nHead / d.nKvHead), u32(d.qStride ?? C), u32(d.kvStride ?? d.nKvHead * d.headDim),
    u32(d.causal ? 1 : 0), f32(d.scale), u32(d.keyPadding ? 1 : 0), u32(drop ? 1 : 0), u32(drop ? drop.seed >>> 0 : 0),
    u32(drop ? dropThreshold(drop.p) : 0), f32(drop ? 1 / (1 - drop.p) : 1),
    u32(offsets.q), u32(offsets.k), u32(offsets.v), u32(offsets.o), u32(offsets.d), u32(d.keyPadding?.offset ?? 0), u32(offsets.lse),
    u32(offsets.dx), u32(offsets.dv), u32(accumulate ? 1 : 0),
    u32(split.chunk), u32(split.zStride), u32(split.lseZ), u32(split.xs),
  ];
}

const forwardSources = new Map<string, KernelSource>();

function forwardSource(D: number, Q: 1 | 4): KernelSource {
  const key = `${D}/${Q}`;
  let s = forwardSources.get(key);
  if (s) return s;
  const BK = tileRows(D);
  const L = lanesOf(D);
  const R = share(L, Q);
  s = {
    name: `attentionForward_d${D}${Q > 1 ? `_x${Q}` : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'rw', 'rw'],
    code: /* wgsl */ `${enableFor(Q)}
${PARAMS}
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> pad: array<u32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<storage, read_write> lse: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;
${MASKS}
var<workgroup> Ks: array<${L.ty}, ${BK * L.n}>;
var<workgroup> Vs: array<${L.ty}, ${BK * L.n}>;

@compute @workgroup_size(${R.size})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${R.wgsl}
  let bh = wid.y;
  let b = bh / p.nHead;
  let h = bh % p.nHead;
  let g = h / p.group;
  let i0 = wid.x * ${BLOCK}u;
  let i = i0 + slot;
  let live = i < p.Tq;
  ${declare(R.S, 'q')}
  ${declare(R.S, 'o')}
  if (live) {
    let qo = p.qOff + (b * p.Tq + i) * p.qs + h * ${D}u${R.at};
    ${unrolled(R.S, (r) => `q${r} = ${load(L, 'q', 'qo', r)};`)}
  }
  var m = LOWEST;
  var l = 0.0;
  // This workgroup's chunk of the keys (all of them unless the pass is split).
  let begin = wid.z * p.chunk;
  let end = min(keyEnd(i0), begin + p.chunk);
  for (var j0 = begin; j0 < end; j0 += ${BK}u) {
    ${loadKvTile(BK, L, R.size)}
    if (live) {
      for (var jj = 0u; jj < ${BK}u; jj++) {
        let j = j0 + jj;
        if (j >= end || !visible(b, i, j)) { continue; }
        let kb = jj * ${L.n}u${R.reg};
        var s = 0.0;
        ${dotInto(R.S, 's', (r) => `q${r}`, (r) => `Ks[kb + ${r}u]`)}
        ${R.sum('s')}
        s *= p.scale;
        let mNew = max(m, s);
        let corr = exp(m - mNew);
        let w = exp(s - mNew);
        l = l * corr + w;
        let wd = w * dropFactor(b, h, i, j);
        ${unrolled(R.S, (r) => `o${r} = fma(${L.ty}(wd), Vs[kb + ${r}u], o${r} * corr);`, '\n        ')}
        m = mNew;
      }
    }
    workgroupBarrier();
  }
  if (!live) { return; }
  let oo = p.oOff + wid.z * p.zStride + (b * p.Tq + i) * p.nHead * ${D}u + h * ${D}u${R.at};
  let inv = select(0.0, 1.0 / l, l > 0.0);
  ${unrolled(R.S, (r) => lanesOfReg(L, `o${r}`, r, (e, v) => `out[oo + ${e}] = ${v} * inv;`), '\n  ')}
  // A query that sees no key (in this chunk) keeps lse = LOWEST: the backward pass then gives it no gradient.
  ${Q > 1 ? 'if (lane != 0u) { return; }' : ''}
  lse[p.lseOff + wid.z * p.lseZ + bh * p.Tq + i] = select(LOWEST, m + log(l), l > 0.0);
}`,
  };
  forwardSources.set(key, s);
  return s;
}

/** Where a pass is split: the invocations it should reach (0: never split) and the fewest keys or queries a chunk walks. */
export interface AttentionSplitSettings {
  target: number;
  minChunk: number;
}

/** Chunks at most. */
export const MAX_ATTENTION_SPLITS = 16;

let splitSettings: AttentionSplitSettings | null = null;
const splitDefaults = (): AttentionSplitSettings => ({ target: envCount('ATTN_WEBGPU_ATTENTION_SPLIT', 1 << 17, 'invocations'), minChunk: 64 });

/** Change when attention passes split (tests split small ones). Returns the previous settings. */
export function setAttentionSplit(change: Partial<AttentionSplitSettings>): AttentionSplitSettings {
  const was = (splitSettings ??= splitDefaults());
  splitSettings = { ...was, ...change };
  return was;
}

/**
 * The chunks of a pass with `invocations` invocations (one per query or key,
 * rounded up to whole workgroups) that each walk `T` keys or queries in
 * tiles of `tile`: as many as bring the pass to the target, each at least
 * minChunk long, at most MAX_ATTENTION_SPLITS. ATTN_WEBGPU_ATTENTION_SPLIT
 * sets the target (2¹⁷ invocations by default; 0 never splits).
 */
export function attentionSplit(invocations: number, T: number, tile: number): { splits: number; chunk: number } {
  const whole = { splits: 1, chunk: Math.max(tile, Math.ceil(T / tile) * tile) };
  const { target, minChunk } = (splitSettings ??= splitDefaults());
  if (target === 0 || invocations === 0) return whole;
  return chunksToReach(invocations, target, T, minChunk, MAX_ATTENTION_SPLITS, tile) ?? whole;
}

/** out = Σ_z exp(lse_z − lse)·o_z, lse = log Σ_z exp(lse_z): the split forward's partials (each normalised by its own sum) made one. */
const COMBINE: KernelSource = {
  name: 'attentionForwardCombine',
  bindings: ['read', 'read', 'rw', 'rw'],
  code: /* wgsl */ `
struct Dims { rows: u32, Tq: u32, nHead: u32, D: u32, splits: u32, oOff: u32, lseOff: u32, zStride: u32, lseZ: u32 }
@group(0) @binding(0) var<storage, read> part: array<f32>;   // [splits, B·Tq, nHead·D]
@group(0) @binding(1) var<storage, read> partLse: array<f32>; // [splits, B·nHead·Tq]
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;
@group(0) @binding(4) var<uniform> p: Dims;
${FLAT_INDEX}
const LOWEST: f32 = -0x1.fffffep+127f;
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let x = flat(gid, nwg); // (b·Tq + i)·nHead·D + h·D + e
  let W = p.nHead * p.D;
  if (x >= p.rows * W) { return; }
  let row = x / W;
  let h = (x % W) / p.D;
  let r = ((row / p.Tq) * p.nHead + h) * p.Tq + row % p.Tq; // (b·nHead + h)·Tq + i
  var m = LOWEST;
  for (var z = 0u; z < p.splits; z++) { m = max(m, partLse[z * p.lseZ + r]); }
  var total = LOWEST;
  var o = 0.0;
  if (m > LOWEST) {
    var l = 0.0;
    for (var z = 0u; z < p.splits; z++) { l += exp(partLse[z * p.lseZ + r] - m); }
    total = m + log(l);
    for (var z = 0u; z < p.splits; z++) { o = fma(exp(partLse[z * p.lseZ + r] - total), part[z * p.zStride + x], o); }
  }
  out[p.oOff + x] = o;
  if (x % p.D == 0u) { lse[p.lseOff + r] = total; }
}`,
};

/**
 * out [B, Tq, nHead·headDim] = attention of q against k, v; lse [B, nHead, Tq]
 * receives each query's log-sum-exp (what the backward pass needs).
 */
export function attentionForward(ctx: GpuContext, q: GpuSpan, k: GpuSpan, v: GpuSpan, out: GpuSpan, lse: GpuSpan, d: GpuAttentionDims): void {
  const blocks = Math.ceil(d.Tq / BLOCK);
  const Q = attentionLanes(ctx, d.headDim);
  const kernel = forwardSource(d.headDim, Q);
  const { splits, chunk } = attentionSplit(d.B * d.nHead * blocks * BLOCK * Q, d.Tk, tileRows(d.headDim));
  const buffers = (o: GPUBuffer, l: GPUBuffer) => [q.buffer, k.buffer, v.buffer, d.keyPadding?.buffer, o, l];
  const offsets = { q: q.offset, k: k.offset, v: v.offset, d: 0, dx: 0, dv: 0 };
  if (splits === 1) {
    ctx.dispatch(kernel, buffers(out.buffer, lse.buffer), params(d, { ...offsets, o: out.offset, lse: lse.offset }, false, { chunk, zStride: 0, lseZ: 0, xs: 0 }), [blocks, d.B * d.nHead]);
    return;
  }
  const n = d.B * d.Tq * d.nHead * d.headDim;
  const rows = d.B * d.nHead * d.Tq;
  const part = ctx.buffer(splits * n * 4);
  const partLse = ctx.buffer(splits * rows * 4);
  ctx.dispatch(kernel, buffers(part, partLse), params(d, { ...offsets, o: 0, lse: 0 }, false, { chunk, zStride: n, lseZ: rows, xs: 0 }), [blocks, d.B * d.nHead, splits]);
  ctx.dispatch(
    COMBINE, [part, partLse, out.buffer, lse.buffer],
    [u32(d.B * d.Tq), u32(d.Tq), u32(d.nHead), u32(d.headDim), u32(splits), u32(out.offset), u32(lse.offset), u32(n), u32(rows)],
    grid(ctx, n),
  );
  ctx.release(part);
  ctx.release(partLse);
}

/** stats = [lse | D]: each row's log-sum-exp copied, and Dᵢ = dOᵢ·Oᵢ per (b, h, i) (a copy command would end the compute pass). */
const ROW_DOT: KernelSource = {
  name: 'attentionBackwardRowDot',
  bindings: ['read', 'read', 'read', 'rw'],
  code: /* wgsl */ `
struct Dims { n: u32, Tq: u32, nHead: u32, D: u32, oOff: u32, dOff: u32, statsN: u32, lseOff: u32 }
@group(0) @binding(0) var<storage, read> out: array<f32>;
@group(0) @binding(1) var<storage, read> dOut: array<f32>;
@group(0) @binding(2) var<storage, read> lse: array<f32>;
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;
@group(0) @binding(4) var<uniform> p: Dims;
${FLAT_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = flat(gid, nwg); // (b·nHead + h)·Tq + i
  if (r >= p.n) { return; }
  let i = r % p.Tq;
  let bh = r / p.Tq;
  let b = bh / p.nHead;
  let h = bh % p.nHead;
  let at = (b * p.Tq + i) * p.nHead * p.D + h * p.D;
  var s = 0.0;
  for (var e = 0u; e < p.D; e++) { s = fma(dOut[p.dOff + at + e], out[p.oOff + at + e], s); }
  stats[r] = lse[p.lseOff + r];
  stats[p.statsN + r] = s;
}`,
};

const dqSources = new Map<string, KernelSource>();

/** dq: Q invocations per query, K/V tiles shared by the workgroup. Bindings: q k v dOut stats pad dq. */
function dqSource(D: number, Q: 1 | 4): KernelSource {
  const key = `${D}/${Q}`;
  let s = dqSources.get(key);
  if (s) return s;
  const BK = tileRows(D);
  const L = lanesOf(D);
  const R = share(L, Q);
  s = {
    name: `attentionBackwardDq_d${D}${Q > 1 ? `_x${Q}` : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw'],
    code: /* wgsl */ `${enableFor(Q)}
${PARAMS}
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> dOut: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read> pad: array<u32>;
@group(0) @binding(6) var<storage, read_write> dq: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;
${MASKS}
var<workgroup> Ks: array<${L.ty}, ${BK * L.n}>;
var<workgroup> Vs: array<${L.ty}, ${BK * L.n}>;

@compute @workgroup_size(${R.size})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${R.wgsl}
  let bh = wid.y;
  let b = bh / p.nHead;
  let h = bh % p.nHead;
  let g = h / p.group;
  let i0 = wid.x * ${BLOCK}u;
  let i = i0 + slot;
  let live = i < p.Tq;
  let n = p.B * p.nHead * p.Tq;
  ${declare(R.S, 'q')}
  ${declare(R.S, 'g')}
  ${declare(R.S, 'a')}
  var lse = LOWEST;
  var Di = 0.0;
  if (live) {
    let qo = p.qOff + (b * p.Tq + i) * p.qs + h * ${D}u${R.at};
    let go = p.dOff + (b * p.Tq + i) * p.nHead * ${D}u + h * ${D}u${R.at};
    ${unrolled(R.S, (r) => `q${r} = ${load(L, 'q', 'qo', r)}; g${r} = ${load(L, 'dOut', 'go', r)};`)}
    lse = stats[p.lseOff + bh * p.Tq + i];
    Di = stats[n + bh * p.Tq + i];
  }
  let begin = wid.z * p.chunk;
  let end = min(keyEnd(i0), begin + p.chunk);
  for (var j0 = begin; j0 < end; j0 += ${BK}u) {
    ${loadKvTile(BK, L, R.size)}
    if (live && lse > LOWEST) {
      for (var jj = 0u; jj < ${BK}u; jj++) {
        let j = j0 + jj;
        if (j >= end || !visible(b, i, j)) { continue; }
        let kb = jj * ${L.n}u${R.reg};
        var sp = vec2<f32>(0.0); // the score and dO·v
        ${dotInto(R.S, 'sp.x', (r) => `q${r}`, (r) => `Ks[kb + ${r}u]`)}
        ${dotInto(R.S, 'sp.y', (r) => `g${r}`, (r) => `Vs[kb + ${r}u]`)}
        ${R.sum('sp')}
        let pr = exp(sp.x * p.scale - lse);
        let ds = pr * (sp.y * dropFactor(b, h, i, j) - Di);
        ${unrolled(R.S, (r) => `a${r} = fma(${L.ty}(ds), Ks[kb + ${r}u], a${r});`, '\n        ')}
      }
    }
    workgroupBarrier();
  }
  if (!live) { return; }
  let qo = p.dxOff + wid.z * p.zStride + (b * p.Tq + i) * p.xs + h * ${D}u${R.at};
  ${unrolled(R.S, (r) => lanesOfReg(L, `a${r}`, r, (e, v) => `{ var x = p.scale * ${v}; if (p.accumulate != 0u) { x += dq[qo + ${e}]; } dq[qo + ${e}] = x; }`), '\n  ')}
}`,
  };
  dqSources.set(key, s);
  return s;
}

const dkvSources = new Map<string, KernelSource>();

/**
 * dk, dv: one invocation per key of one KV head, looping over the query heads
 * of its group and over tiles of queries (q, dO, lse, D shared by the
 * workgroup). `shared`: dk and dv live in one buffer (a packed qkv gradient),
 * bound once, since WebGPU forbids two writable bindings of one buffer.
 * Bindings: q k v dOut stats pad dk dv.
 */
function dkvSource(D: number, shared: boolean, Q: 1 | 4): KernelSource {
  const key = `${D}${shared}/${Q}`;
  let s = dkvSources.get(key);
  if (s) return s;
  const BQ = tileRows(D);
  const L = lanesOf(D);
  const R = share(L, Q);
  s = {
    name: `attentionBackwardDkv_d${D}${shared ? '_packed' : ''}${Q > 1 ? `_x${Q}` : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'read', 'read', 'rw', 'rw'],
    code: /* wgsl */ `${enableFor(Q)}
${PARAMS}
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> dOut: array<f32>;
@group(0) @binding(4) var<storage, read> stats: array<f32>;
@group(0) @binding(5) var<storage, read> pad: array<u32>;
@group(0) @binding(6) var<storage, read_write> dk: array<f32>;
@group(0) @binding(7) var<storage, read_write> dvBuf: array<f32>;
@group(0) @binding(8) var<uniform> p: Params;
${MASKS}
var<workgroup> Qs: array<${L.ty}, ${BQ * L.n}>;
var<workgroup> Gs: array<${L.ty}, ${BQ * L.n}>;
var<workgroup> Ls: array<f32, ${BQ}>;
var<workgroup> Ds: array<f32, ${BQ}>;

fn writeDv(at: u32, x: f32) {
  ${shared ? 'if (p.accumulate != 0u) { dk[at] = dk[at] + x; } else { dk[at] = x; }' : 'if (p.accumulate != 0u) { dvBuf[at] = dvBuf[at] + x; } else { dvBuf[at] = x; }'}
}

@compute @workgroup_size(${R.size})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${R.wgsl}
  let nKv = p.nHead / p.group;
  let b = wid.y / nKv;
  let g = wid.y % nKv;
  let j = wid.x * ${BLOCK}u + slot;
  let live = j < p.Tk;
  let n = p.B * p.nHead * p.Tq;
  ${declare(R.S, 'kr')}
  ${declare(R.S, 'vr')}
  ${declare(R.S, 'dkr')}
  ${declare(R.S, 'dvr')}
  var keyVisible = live;
  if (live) {
    let at = (b * p.Tk + j) * p.ks + g * ${D}u${R.at};
    ${unrolled(R.S, (r) => `kr${r} = ${load(L, 'k', 'p.kOff + at', r)}; vr${r} = ${load(L, 'v', 'p.vOff + at', r)};`)}
    if (p.hasPad != 0u && pad[p.padOff + b * p.Tk + j] != 0u) { keyVisible = false; }
  }
  // Causal: the first query that sees key j (for the block's first key) is j − (Tk − Tq).
  var iStart = 0u;
  if (p.causal != 0u) { iStart = u32(clamp(i32(wid.x * ${BLOCK}u) - (i32(p.Tk) - i32(p.Tq)), 0, i32(p.Tq))); }
  iStart = iStart - iStart % ${BQ}u;
  // This workgroup's chunk of the queries (all of them unless the pass is split; chunk is a multiple of ${BQ}).
  iStart = max(iStart, wid.z * p.chunk);
  let iEnd = min(p.Tq, wid.z * p.chunk + p.chunk);
  for (var h = g * p.group; h < (g + 1u) * p.group; h++) {
    let bh = b * p.nHead + h;
    for (var i0 = iStart; i0 < iEnd; i0 += ${BQ}u) {
      for (var t = lid; t < ${BQ * L.n}u; t += ${R.size}u) {
        let i = i0 + t / ${L.n}u;
        let e = (t % ${L.n}u) * ${L.w}u;
        var qv = ${L.ty}(0.0);
        var gv = ${L.ty}(0.0);
        if (i < p.Tq) {
          qv = ${load(L, 'q', `p.qOff + (b * p.Tq + i) * p.qs + h * ${D}u + e`, 0)};
          gv = ${load(L, 'dOut', `p.dOff + (b * p.Tq + i) * p.nHead * ${D}u + h * ${D}u + e`, 0)};
        }
        Qs[t] = qv;
        Gs[t] = gv;
      }
      for (var t = lid; t < ${BQ}u; t += ${R.size}u) {
        let i = i0 + t;
        var lv = LOWEST;
        var dv = 0.0;
        if (i < p.Tq) { lv = stats[p.lseOff + bh * p.Tq + i]; dv = stats[n + bh * p.Tq + i]; }
        Ls[t] = lv;
        Ds[t] = dv;
      }
      workgroupBarrier();
      if (keyVisible) {
        for (var ii = 0u; ii < ${BQ}u; ii++) {
          let i = i0 + ii;
          if (i >= p.Tq || Ls[ii] <= LOWEST) { continue; }
          if (p.causal != 0u && i32(j) > i32(i) + i32(p.Tk) - i32(p.Tq)) { continue; }
          let qb = ii * ${L.n}u${R.reg};
          var sp = vec2<f32>(0.0); // the score and dO·v
          ${dotInto(R.S, 'sp.x', (r) => `Qs[qb + ${r}u]`, (r) => `kr${r}`)}
          ${dotInto(R.S, 'sp.y', (r) => `Gs[qb + ${r}u]`, (r) => `vr${r}`)}
          ${R.sum('sp')}
          let pr = exp(sp.x * p.scale - Ls[ii]);
          let m = dropFactor(b, h, i, j);
          let ds = pr * (sp.y * m - Ds[ii]);
          let pm = pr * m;
          ${unrolled(R.S, (r) => `dkr${r} = fma(${L.ty}(ds), Qs[qb + ${r}u], dkr${r}); dvr${r} = fma(${L.ty}(pm), Gs[qb + ${r}u], dvr${r});`, '\n          ')}
        }
      }
      workgroupBarrier();
    }
  }
  if (!live) { return; }
  let at = wid.z * p.zStride + (b * p.Tk + j) * p.xs + g * ${D}u${R.at};
  ${unrolled(R.S, (r) => lanesOfReg(L, `dkr${r}`, r, (e, v) => `{ let ko = p.dxOff + at + ${e}; var x = p.scale * ${v}; if (p.accumulate != 0u) { x += dk[ko]; } dk[ko] = x; }`), '\n  ')}
  ${unrolled(R.S, (r) => lanesOfReg(L, `dvr${r}`, r, (e, v) => `writeDv(p.dvOff + at + ${e}, ${v});`), '\n  ')}
}`,
  };
  dkvSources.set(key, s);
  return s;
}

/**
 * dq, dk, dv += (accumulate) or = their gradients, from the forward's q, k,
 * v, out and lse and the output gradient dOut [B, Tq, nHead·headDim].
 */
export function attentionBackward(
  ctx: GpuContext, lse: GpuSpan, q: GpuSpan, k: GpuSpan, v: GpuSpan, out: GpuSpan, dOut: GpuSpan,
  dq: GpuSpan, dk: GpuSpan, dv: GpuSpan, d: GpuAttentionDims, accumulate: boolean,
): void {
  const D = d.headDim;
  const n = d.B * d.nHead * d.Tq;
  if (n === 0) return;
  // stats = [lse | D]: one binding for both, so that each kernel stays within 8 storage buffers.
  const stats = ctx.buffer(2 * n * 4);
  ctx.dispatch(ROW_DOT, [out.buffer, dOut.buffer, lse.buffer, stats], [u32(n), u32(d.Tq), u32(d.nHead), u32(D), u32(out.offset), u32(dOut.offset), u32(n), u32(lse.offset)], grid(ctx, n));
  const base = { q: q.offset, k: k.offset, v: v.offset, o: out.offset, d: dOut.offset, lse: 0 };
  const pad = d.keyPadding?.buffer;
  const C = d.nHead * D;
  const KV = d.nKvHead * D;
  // dq: Q invocations per query, split over the keys it walks.
  const Q = attentionLanes(ctx, D);
  const qBlocks = Math.ceil(d.Tq / BLOCK);
  const qs = attentionSplit(d.B * d.nHead * qBlocks * BLOCK * Q, d.Tk, tileRows(D));
  if (qs.splits === 1) {
    ctx.dispatch(
      dqSource(D, Q), [q.buffer, k.buffer, v.buffer, dOut.buffer, stats, pad, dq.buffer],
      params(d, { ...base, dx: dq.offset, dv: 0 }, accumulate, { chunk: qs.chunk, zStride: 0, lseZ: 0, xs: d.qStride ?? C }), [qBlocks, d.B * d.nHead],
    );
  } else {
    // Partial dq sums [splits, B·Tq, nHead·D], added in order into dq (row stride qs) by split-K's sum.
    const t = splitTarget(ctx, { M: d.B * d.Tq, N: C, batch: 1, c: dq.buffer, cOffset: dq.offset, ldc: d.qStride ?? C, strideC: 0, alpha: 1, accumulate }, qs.splits);
    ctx.dispatch(
      dqSource(D, Q), [q.buffer, k.buffer, v.buffer, dOut.buffer, stats, pad, t.scratch],
      params(d, { ...base, dx: 0, dv: 0 }, false, { chunk: qs.chunk, zStride: d.B * d.Tq * C, lseZ: 0, xs: C }), [qBlocks, d.B * d.nHead, qs.splits],
    );
    t.finish();
  }
  // dk, dv: Q invocations per key, split over the queries it walks (in each head of its group).
  const kBlocks = Math.ceil(d.Tk / BLOCK);
  const ks = attentionSplit(d.B * d.nKvHead * kBlocks * BLOCK * Q, d.Tq, tileRows(D));
  if (ks.splits === 1) {
    const shared = dk.buffer === dv.buffer;
    ctx.dispatch(
      dkvSource(D, shared, Q), [q.buffer, k.buffer, v.buffer, dOut.buffer, stats, pad, dk.buffer, shared ? null : dv.buffer],
      params(d, { ...base, dx: dk.offset, dv: dv.offset }, accumulate, { chunk: ks.chunk, zStride: 0, lseZ: 0, xs: d.kvStride ?? KV }), [kBlocks, d.B * d.nKvHead],
    );
  } else {
    const target = (g: GpuSpan) => splitTarget(ctx, { M: d.B * d.Tk, N: KV, batch: 1, c: g.buffer, cOffset: g.offset, ldc: d.kvStride ?? KV, strideC: 0, alpha: 1, accumulate }, ks.splits);
    const [tk, tv] = [target(dk), target(dv)];
    ctx.dispatch(
      dkvSource(D, false, Q), [q.buffer, k.buffer, v.buffer, dOut.buffer, stats, pad, tk.scratch, tv.scratch],
      params(d, { ...base, dx: 0, dv: 0 }, false, { chunk: ks.chunk, zStride: d.B * d.Tk * KV, lseZ: 0, xs: KV }), [kBlocks, d.B * d.nKvHead, ks.splits],
    );
    tk.finish();
    tv.finish();
  }
  ctx.release(stats);
}

