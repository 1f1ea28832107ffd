import type { PagedKvDims, PagedKvSequence } from '../../backend.js';
import { f32, type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { LANES, laneSoftmaxMerge, laneSoftmaxState, laneSoftmaxUpdate } from './lane_softmax.js';
import { variants } from './variants.js';

/**
 * Attention of new queries against a paged KV cache, as
 * js/attention_paged.ts: kPool and vPool are one layer's [blocks,
 * blockTokens, nKvHead·headDim] arrays of a KV block pool (paged_kv/), and
 * sequence s's slot j lives in block table[j / blockTokens] at
 * j % blockTokens. Query t of a sequence sees its slots 0 … past + t (their
 * keys and values already written).
 *
 * The layout of attention_cached.ts's kernel: one workgroup per (query row,
 * head), its 32 invocations each keeping an online softmax over the slots
 * j ≡ lid (mod 32), merged through workgroup memory. What differs is where a
 * slot is: each row's block table is read from `info`, staged with the
 * call's other integers — per row (its q row, where its table starts in
 * `info`, its last slot, its sequence's past and first row), then every
 * sequence's table.
 *
 * Given the new rows' keys and values (`fresh`), the kernel stores them
 * itself, as attentionCached does: the first query head of each KV head's
 * group writes row t's into slot past + t, and every query reads the slots
 * from past on from `fresh`, so no invocation reads a slot being written,
 * and a step needs no copies into the pool (each would end the compute
 * pass) and no separate attention for a sequence with nothing cached yet.
 */

/** Integers per query row in `info`: its q row, where its table starts, its last slot, its sequence's past and first row. */
const INFO = 5;

const source = variants(
  (v: { D: number }) => `${v.D}`,
  ({ D }): KernelSource => ({
    name: `attentionPaged_d${D}`,
    bindings: ['read', 'read', 'read', 'read', 'rw', 'rw', 'rw'],
    code: /* wgsl */ `
struct Params { nHead: u32, group: u32, nKvHead: u32, scale: f32, blockTokens: u32, qOff: u32, kOff: u32, vOff: u32, oOff: u32, iOff: u32,
  hasFresh: u32, knOff: u32, vnOff: u32 }
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> kNew: array<f32>;
@group(0) @binding(2) var<storage, read> vNew: array<f32>;
@group(0) @binding(3) var<storage, read> info: array<i32>;
@group(0) @binding(4) var<storage, read_write> kPool: array<f32>;
@group(0) @binding(5) var<storage, read_write> vPool: array<f32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<uniform> p: Params;
${laneSoftmaxState(D)}

/** Where slot j of the table starting at info[table] lies in a pool array (before the kernel's offset), KV head offset g added. */
fn slotAt(table: u32, j: u32, Ckv: u32, g: u32) -> u32 {
  let block = u32(info[table + j / p.blockTokens]);
  return (block * p.blockTokens + j % p.blockTokens) * Ckv + g;
}

@compute @workgroup_size(${LANES})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let h = wid.x;
  let i = p.iOff + ${INFO}u * wid.y;
  let row = u32(info[i]);
  let table = p.iOff + u32(info[i + 1u]);
  let last = u32(info[i + 2u]);
  let past = u32(info[i + 3u]);
  let first = u32(info[i + 4u]);
  let C = p.nHead * ${D}u;
  let Ckv = p.nKvHead * ${D}u;
  let qo = p.qOff + row * C + h * ${D}u;
  let g = (h / p.group) * ${D}u;
  var qr: array<f32, ${D}>;
  var o: array<f32, ${D}>;
  for (var e = 0u; e < ${D}u; e++) { qr[e] = q[qo + e]; }
  let fresh = p.hasFresh != 0u;
  // This row's key and value into its slot, once per KV head (no query below reads them from the pool).
  if (fresh && h % p.group == 0u) {
    let dst = slotAt(table, last, Ckv, g);
    for (var e = lid; e < ${D}u; e += ${LANES}u) {
      kPool[p.kOff + dst + e] = kNew[p.knOff + row * Ckv + g + e];
      vPool[p.vOff + dst + e] = vNew[p.vnOff + row * Ckv + g + e];
    }
  }
  var m = LOWEST;
  var l = 0.0;
  for (var j = lid; j <= last; j += ${LANES}u) {
    // Slots from past on: this call's new rows, read from kNew and vNew.
    let isNew = fresh && j >= past;
    let ko = select(slotAt(table, j, Ckv, g), (first + j - past) * Ckv + g, isNew);
    var s = 0.0;
    if (isNew) {
      for (var e = 0u; e < ${D}u; e++) { s = fma(qr[e], kNew[p.knOff + ko + e], s); }
    } else {
      for (var e = 0u; e < ${D}u; e++) { s = fma(qr[e], kPool[p.kOff + ko + e], s); }
    }
    s *= p.scale;
${laneSoftmaxUpdate(D, (e) => `vPool[p.vOff + ko + ${e}]`, { when: 'isNew', value: (e) => `vNew[p.vnOff + ko + ${e}]` })}
  }
  let oo = p.oOff + row * C + h * ${D}u;
${laneSoftmaxMerge(D, 'oo')}
}`,
  }),
);

/**
 * The integers a call stages for the kernel: for each query row of every
 * sequence [its row in q, where its sequence's table starts, its last slot,
 * the sequence's past, its first row], then the tables themselves.
 */
export function pagedInfo(seqs: readonly PagedKvSequence[]): { info: Int32Array; rows: number } {
  const rows = seqs.reduce((n, s) => n + s.Tq, 0);
  const tables = seqs.reduce((n, s) => n + s.table.length, 0);
  const info = new Int32Array(INFO * rows + tables);
  let r = 0;
  let at = INFO * rows;
  for (const s of seqs) {
    for (let t = 0; t < s.Tq; t++, r++) info.set([s.offset + t, at, s.past + t, s.past, s.offset], INFO * r);
    for (let b = 0; b < s.table.length; b++) info[at + b] = s.table[b]!;
    at += s.table.length;
  }
  return { info, rows };
}

/**
 * out's rows of every sequence = attention of q's against its slots through
 * its block table (`info`: pagedInfo's, staged); `fresh`: the new rows' keys
 * and values, stored in their slots by the same kernel.
 */
export function attentionPaged(ctx: GpuContext, q: GpuSpan, kPool: GpuSpan, vPool: GpuSpan, info: GpuSpan, rows: number, out: GpuSpan, d: PagedKvDims, fresh: { k: GpuSpan; v: GpuSpan } | null = null): void {
  const D = d.headDim;
  if (D * LANES * 4 > ctx.limits.maxComputeWorkgroupStorageSize - 1024) throw new Error(`webgpu attentionPaged: headDim ${D} needs more workgroup memory than this device has`);
  ctx.dispatch(
    source({ D }),
    [q.buffer, fresh?.k.buffer, fresh?.v.buffer, info.buffer, kPool.buffer, vPool.buffer, out.buffer],
    [
      u32(d.nHead), u32(d.nHead / d.nKvHead), u32(d.nKvHead), f32(d.scale), u32(d.blockTokens), u32(q.offset), u32(kPool.offset), u32(vPool.offset), u32(out.offset), u32(info.offset),
      u32(fresh ? 1 : 0), u32(fresh?.k.offset ?? 0), u32(fresh?.v.offset ?? 0),
    ],
    [d.nHead, rows],
  );
}
