import type { KvAttentionDims } from '../../backend.js';
import { f32, type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';

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
 * the common maximum.
 *
 * Given the new positions' keys and values (`fresh`), the kernel stores them
 * in the caches itself: the first query head of each KV head's group writes
 * them at slot past + t, and every query reads the slots from past on from
 * `fresh`, not from the caches, so no invocation reads a slot being written.
 * Decoding then needs no copies into the caches, which would each end the
 * compute pass.
 */

const LANES = 32;

const sources = new Map<number, KernelSource>();

function source(D: number): KernelSource {
  let s = sources.get(D);
  if (s) return s;
  s = {
    name: `attentionCached_d${D}`,
    bindings: ['read', 'read', 'read', 'read', 'rw', 'rw', 'rw'],
    code: /* wgsl */ `
struct Params { Tq: u32, past: u32, cap: u32, nHead: u32, group: u32, nKvHead: u32, scale: f32,
  qOff: u32, kOff: u32, vOff: u32, sOff: u32, oOff: u32, hasFresh: u32, knOff: u32, vnOff: u32 }
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kNew: array<f32>;
@group(0) @binding(2) var<storage, read> vNew: array<f32>;
@group(0) @binding(3) var<storage, read> start: array<i32>;
@group(0) @binding(4) var<storage, read_write> kCache: array<f32>;
@group(0) @binding(5) var<storage, read_write> vCache: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;
const LOWEST: f32 = -0x1.fffffep+127f;
var<workgroup> Ms: array<f32, ${LANES}>;
var<workgroup> Ls: array<f32, ${LANES}>;
var<workgroup> Os: array<f32, ${LANES * D}>;

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
  for (var e = 0u; e < ${D}u; e++) { qr[e] = q[qo + e]; }
  let fresh = p.hasFresh != 0u;
  // The new position's key and value into the caches, once per KV head (no query below reads them from there).
  if (fresh && h % p.group == 0u) {
    let src = (b * p.Tq + t) * Ckv + g;
    let dst = (b * p.cap + p.past + t) * Ckv + g;
    for (var e = lid; e < ${D}u; e += ${LANES}u) {
      kCache[p.kOff + dst + e] = kNew[p.knOff + src + e];
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
      for (var e = 0u; e < ${D}u; e++) { s = fma(qr[e], kNew[p.knOff + ko + e], s); }
    } else {
      for (var e = 0u; e < ${D}u; e++) { s = fma(qr[e], kCache[p.kOff + ko + e], s); }
    }
    s *= p.scale;
    let mNew = max(m, s);
    let corr = exp(m - mNew);
    let w = exp(s - mNew);
    l = l * corr + w;
    if (isNew) {
      for (var e = 0u; e < ${D}u; e++) { o[e] = o[e] * corr + w * vNew[p.vnOff + ko + e]; }
    } else {
      for (var e = 0u; e < ${D}u; e++) { o[e] = o[e] * corr + w * vCache[p.vOff + ko + e]; }
    }
    m = mNew;
  }
  Ms[lid] = m;
  Ls[lid] = l;
  for (var e = 0u; e < ${D}u; e++) { Os[lid * ${D}u + e] = o[e]; }
  workgroupBarrier();
  var M = LOWEST;
  for (var r = 0u; r < ${LANES}u; r++) { M = max(M, Ms[r]); }
  var L = 0.0;
  for (var r = 0u; r < ${LANES}u; r++) { if (Ls[r] > 0.0) { L += Ls[r] * exp(Ms[r] - M); } }
  let oo = p.oOff + (b * p.Tq + t) * C + h * ${D}u;
  for (var e = lid; e < ${D}u; e += ${LANES}u) {
    var acc = 0.0;
    for (var r = 0u; r < ${LANES}u; r++) { if (Ls[r] > 0.0) { acc += Os[r * ${D}u + e] * exp(Ms[r] - M); } }
    out[oo + e] = select(0.0, acc / L, L > 0.0);
  }
}`,
  };
  sources.set(D, s);
  return s;
}

/** out = attention of q's new rows against the cache; start (i32, B) is each row's first unpadded slot; `fresh` [B, Tq, nKvHead·headDim]: the new keys and values, stored in the caches by the same kernel. */
export function attentionCached(ctx: GpuContext, q: GpuSpan, kCache: GpuSpan, vCache: GpuSpan, out: GpuSpan, start: GpuSpan, d: KvAttentionDims, fresh: { k: GpuSpan; v: GpuSpan } | null = null): void {
  const D = d.headDim;
  if (D * LANES * 4 > ctx.limits.maxComputeWorkgroupStorageSize - 1024) throw new Error(`webgpu attentionCached: headDim ${D} needs more workgroup memory than this device has`);
  ctx.dispatch(
    source(D),
    [q.buffer, fresh?.k.buffer, fresh?.v.buffer, start.buffer, kCache.buffer, vCache.buffer, out.buffer],
    [
      u32(d.Tq), u32(d.past), u32(d.cap), u32(d.nHead), u32(d.nHead / d.nKvHead), u32(d.nKvHead), f32(d.scale),
      u32(q.offset), u32(kCache.offset), u32(vCache.offset), u32(start.offset), u32(out.offset),
      u32(fresh ? 1 : 0), u32(fresh?.k.offset ?? 0), u32(fresh?.v.offset ?? 0),
    ],
    [d.nHead, d.Tq, d.B],
  );
}
