import type { KvAttentionDims } from '../../backend.js';
import { f32, type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { type FoldedInput, foldedInput } from './input_fold.js';
import { sharedAngles } from './rope.js';
import { LANES, laneSoftmaxMerge, laneSoftmaxState, laneSoftmaxUpdate } from './lane_softmax.js';
import { variants } from './variants.js';

/**
 * Attention of new queries against a KV cache (generation), as
 * js/attention_cached.ts: q and out [B, Tq, nHead·headDim], caches
 * [B, cap, nKvHead·headDim]; query t of row b sits at slot past + t and sees
 * slots start[b] … past + t. A query that sees nothing outputs zeros.
 *
 * Decoding has few queries (B·nHead of them for one new token), so one
 * workgroup per (b, t, h) splits the keys among its 32 invocations: each keeps
 * an online softmax (max, sum, output) over its keys j ≡ lid (mod 32); then
 * the 32 partial results are merged through workgroup memory, rescaled to
 * the common maximum (lane_softmax.ts, shared with attention_paged.ts).
 *
 * Given the new positions' keys and values (`fresh`), the kernel stores them
 * in the caches itself: the first query head of each KV head's group writes
 * them at slot past + t, and every query reads the slots from past on from
 * `fresh`, not from the caches, so no invocation reads a slot being written.
 * Decoding then needs no copies into the caches, which would each end the
 * compute pass.
 *
 * Given the pending RoPE rotations that produced q and the new keys (a
 * decode step's, deferred by rope.ts: input_fold.ts), the kernel reads the
 * unrotated rows and rotates them itself, with rope.ts's formulas and the
 * same cos and sin tables: each query as it loads it, each new key as it
 * stores it in the cache and as it scores it. Llama's two RoPE dispatches a
 * layer go.
 */


/**
 * WGSL for a folded RoPE (rope.ts's pairs and formulas): `pairOf` gives an
 * element's pair and the pair's two elements, `freshKey` an element of a new
 * key row, rotated when the keys' rotation is folded in.
 */
const rotation = (D: number) => /* wgsl */ `
fn pairOf(e: u32, inter: bool) -> vec3<u32> {
  // (pair i, its first element, its second element)
  let i = select(e % ${D / 2}u, e / 2u, inter);
  return vec3<u32>(i, select(i, 2u * i, inter), select(i + ${D / 2}u, 2u * i + 1u, inter));
}

/** Element e of the new key row starting at kNew[at] (row b·Tq + t), rotated when the keys' RoPE is folded in. */
fn freshKey(at: u32, e: u32, row: u32, t: u32) -> f32 {
  if (p.kRope == 0u) { return kNew[at + e]; }
  let pr = pairOf(e, p.kInter != 0u);
  let a = select(t, row, p.kPerRow != 0u) * ${D / 2}u + pr.x;
  let c = cs[p.kCos + a];
  let sn = cs[p.kSin + a];
  let x0 = kNew[at + pr.y];
  let x1 = kNew[at + pr.z];
  return select(x0 * sn + x1 * c, x0 * c - x1 * sn, e == pr.y);
}`;

const source = variants(
  (v: { D: number; rope: boolean }) => `${v.D},${v.rope}`,
  ({ D, rope }): KernelSource => ({
    name: `attentionCached_d${D}${rope ? '_rope' : ''}`,
    bindings: ['read', 'read', 'read', 'read', 'rw', 'rw', 'rw', ...(rope ? (['read'] as const) : [])],
    code: /* wgsl */ `
struct Params { Tq: u32, past: u32, cap: u32, nHead: u32, group: u32, nKvHead: u32, scale: f32,
  qOff: u32, kOff: u32, vOff: u32, sOff: u32, oOff: u32, hasFresh: u32, knOff: u32, vnOff: u32${rope ? `,
  qRope: u32, qPerRow: u32, qInter: u32, qCos: u32, qSin: u32, kRope: u32, kPerRow: u32, kInter: u32, kCos: u32, kSin: u32` : ''} }
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kNew: array<f32>;
@group(0) @binding(2) var<storage, read> vNew: array<f32>;
@group(0) @binding(3) var<storage, read> start: array<i32>;
@group(0) @binding(4) var<storage, read_write> kCache: array<f32>;
@group(0) @binding(5) var<storage, read_write> vCache: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
${rope ? '@group(0) @binding(7) var<storage, read> cs: array<f32>; // the RoPE tables' : ''}
@group(0) @binding(${rope ? 8 : 7}) var<uniform> p: Params;
${rope ? rotation(D) : ''}
${laneSoftmaxState(D)}

@compute @workgroup_size(${LANES})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let t = wid.y;
  let b = wid.z;
  let C = p.nHead * ${D}u;
  let Ckv = p.nKvHead * ${D}u;
  let qo = p.qOff + (b * p.Tq + t) * C + h * ${D}u;
  let g = (h / p.group) * ${D}u;
  var qr: array<f32, ${D}>;
  var o: array<f32, ${D}>;
  ${
    rope
      ? `if (p.qRope != 0u) {
    let a = select(t, b * p.Tq + t, p.qPerRow != 0u) * ${D / 2}u;
    for (var i = 0u; i < ${D / 2}u; i++) {
      let i0 = select(i, 2u * i, p.qInter != 0u);
      let i1 = select(i + ${D / 2}u, 2u * i + 1u, p.qInter != 0u);
      let c = cs[p.qCos + a + i];
      let sn = cs[p.qSin + a + i];
      let x0 = q[qo + i0];
      let x1 = q[qo + i1];
      qr[i0] = x0 * c - x1 * sn;
      qr[i1] = x0 * sn + x1 * c;
    }
  } else {
    for (var e = 0u; e < ${D}u; e++) { qr[e] = q[qo + e]; }
  }`
      : `for (var e = 0u; e < ${D}u; e++) { qr[e] = q[qo + e]; }`
  }
  let fresh = p.hasFresh != 0u;
  // The new position's key and value into the caches, once per KV head (no query below reads them from there).
  if (fresh && h % p.group == 0u) {
    let src = (b * p.Tq + t) * Ckv + g;
    let dst = (b * p.cap + p.past + t) * Ckv + g;
    for (var e = lid; e < ${D}u; e += ${LANES}u) {
      kCache[p.kOff + dst + e] = ${rope ? 'freshKey(p.knOff + src, e, b * p.Tq + t, t)' : 'kNew[p.knOff + src + e]'};
      vCache[p.vOff + dst + e] = vNew[p.vnOff + src + e];
    }
  }
  var m = LOWEST;
  var l = 0.0;
  let last = p.past + t;
  for (var j = u32(max(start[p.sOff + b], 0)) + lid; j <= last; j += ${LANES}u) {
    // Slots from past on: this call's new positions, read from kNew and vNew.
    let isNew = fresh && j >= p.past;
    let ko = select((b * p.cap + j) * Ckv + g, (b * p.Tq + j - p.past) * Ckv + g, isNew);
    var s = 0.0;
    if (isNew) {
      for (var e = 0u; e < ${D}u; e++) { s = fma(qr[e], ${rope ? 'freshKey(p.knOff + ko, e, b * p.Tq + j - p.past, j - p.past)' : 'kNew[p.knOff + ko + e]'}, s); }
    } else {
      for (var e = 0u; e < ${D}u; e++) { s = fma(qr[e], kCache[p.kOff + ko + e], s); }
    }
    s *= p.scale;
${laneSoftmaxUpdate(D, (e) => `vCache[p.vOff + ko + ${e}]`, { when: 'isNew', value: (e) => `vNew[p.vnOff + ko + ${e}]` })}
  }
  let oo = p.oOff + (b * p.Tq + t) * C + h * ${D}u;
${laneSoftmaxMerge(D, 'oo')}
}`,
  }),
);

/**
 * out = attention of q's new rows against the cache; start (i32, B) is each
 * row's first unpadded slot; `fresh` [B, Tq, nKvHead·headDim]: the new keys
 * and values, stored in the caches by the same kernel. Where q or the new
 * keys are the output of a pending RoPE (input_fold.ts), the kernel rotates
 * them itself.
 */
export function attentionCached(ctx: GpuContext, q: GpuSpan, kCache: GpuSpan, vCache: GpuSpan, out: GpuSpan, start: GpuSpan, d: KvAttentionDims, fresh: { k: GpuSpan; v: GpuSpan } | null = null): void {
  const D = d.headDim;
  if (D * LANES * 4 > ctx.limits.maxComputeWorkgroupStorageSize - 1024) throw new Error(`webgpu attentionCached: headDim ${D} needs more workgroup memory than this device has`);
  const rows = d.B * d.Tq;
  const qRope = ropeOf(ctx, q, rows, d.nHead * D);
  const kRope = fresh ? ropeOf(ctx, fresh.k, rows, d.nKvHead * D) : null;
  const run = (tables: GpuSpan | null, at: { qCos: number; qSin: number; kCos: number; kSin: number }) =>
    ctx.dispatch(
      source({ D, rope: tables !== null }),
      [qRope?.input.buffer ?? q.buffer, kRope?.input.buffer ?? fresh?.k.buffer, fresh?.v.buffer, start.buffer, kCache.buffer, vCache.buffer, out.buffer, ...(tables ? [tables.buffer] : [])],
      [
        u32(d.Tq), u32(d.past), u32(d.cap), u32(d.nHead), u32(d.nHead / d.nKvHead), u32(d.nKvHead), f32(d.scale),
        u32(qRope?.input.offset ?? q.offset), u32(kCache.offset), u32(vCache.offset), u32(start.offset), u32(out.offset),
        u32(fresh ? 1 : 0), u32(kRope?.input.offset ?? fresh?.k.offset ?? 0), u32(fresh?.v.offset ?? 0),
        ...(tables
          ? [
              ...ropeParams(qRope, tables.offset + at.qCos, tables.offset + at.qSin),
              ...ropeParams(kRope, tables.offset + at.kCos, tables.offset + at.kSin),
            ]
          : []),
      ],
      [d.nHead, d.Tq, d.B],
    );
  if (!qRope && !kRope) return run(null, { qCos: 0, qSin: 0, kCos: 0, kSin: 0 });
  // Both rotations' tables in one staged span: [q cos, q sin, k cos, k sin] (a rotation not folded has none).
  const qn = qRope?.cos.length ?? 0;
  const kn = kRope?.cos.length ?? 0;
  const table = new Float32Array(2 * (qn + kn));
  if (qRope) {
    table.set(qRope.cos, 0);
    table.set(qRope.sin, qn);
  }
  if (kRope) {
    table.set(kRope.cos, 2 * qn);
    table.set(kRope.sin, 2 * qn + kn);
  }
  ctx.withStaged(table, (t) => run(t, { qCos: 0, qSin: qn, kCos: 2 * qn, kSin: 2 * qn + kn }));
}

type RopeFold = Extract<FoldedInput, { kind: 'rope' }>;

/** The pending RoPE rotation whose output is `x` ([rows, cols], forward into a fresh span), or null. */
function ropeOf(ctx: GpuContext, x: GpuSpan, rows: number, cols: number): RopeFold | null {
  const f = foldedInput(ctx, x.buffer, x.offset, rows, cols, 0);
  return f?.kind === 'rope' ? f : null;
}

/** The kernel's fields for one rotation: folded, angles per row (not per slot), interleaved pairs, table offsets. */
const ropeParams = (f: RopeFold | null, cos: number, sin: number) =>
  f ? [u32(1), u32(sharedAngles(f.cos, f.dims) ? 0 : 1), u32(f.dims.layout === 'interleaved' ? 1 : 0), u32(cos), u32(sin)] : [u32(0), u32(0), u32(0), u32(0), u32(0)];
