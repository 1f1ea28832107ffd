import { type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX, grid, WG } from './grid.js';

/**
 * Embedding lookup and its gradient (js/embedding.ts).
 *
 * Backward is a scatter-add: a token that appears several times collects
 * every one of its rows' gradients. WGSL has no float atomics, and atomics
 * would make the sum's order (and so its rounding) change from run to run.
 * Instead the positions of each token are chained: every position gets the
 * next position holding the same token, and the first one is marked; one
 * invocation per (first position, column) walks its chain in ascending order
 * adding into dWeight. That is the order js adds in, with the same float32
 * rounding at every step: the result is bit-identical.
 *
 * The chains are made on the host, where the ids already are (the Backend
 * takes them as an Int32Array): one pass from the last position to the
 * first with a map from token to the position seen last, O(N), and they go
 * up with the ids. (Finding them on the GPU, each position scanning the
 * others, was O(N²).)
 */

/**
 * The lookup, with the ids as int32 (uploaded from the host) or as float32
 * (argmaxRows' picks, already on the device: decoding queued ahead). A stored
 * id is clamped to the table, since it was never checked on the host.
 */
function forwardKernel(ids: 'i32' | 'f32'): KernelSource {
  const row = ids === 'i32' ? 'u32(ids[p.idOff + r])' : 'min(u32(ids[p.idOff + r]), p.rows - 1u)';
  return {
    name: ids === 'i32' ? 'embeddingForward' : 'embeddingForwardStored',
    bindings: ['read', 'read', 'rw'],
    code: /* wgsl */ `
struct Params { n: u32, dim: u32, wOff: u32, idOff: u32, outOff: u32, rows: u32 }
@group(0) @binding(0) var<storage, read> weight: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<${ids}>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${FLAT_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n * p.dim) { return; }
  let r = i / p.dim;
  let c = i % p.dim;
  out[p.outOff + i] = weight[p.wOff + ${row} * p.dim + c];
}`,
  };
}

const FORWARD = forwardKernel('i32');
const FORWARD_STORED = forwardKernel('f32');

/** out[r] = weight[ids[r]] for each of the ids' rows of `dim` values (`stored`: the ids are floats, argmaxRows' picks). */
export function embeddingForward(ctx: GpuContext, weight: GpuSpan, ids: GpuSpan, out: GpuSpan, dim: number, stored = false): void {
  const rows = Math.floor(weight.length / dim);
  ctx.dispatch(stored ? FORWARD_STORED : FORWARD, [weight.buffer, ids.buffer, out.buffer],
    [u32(ids.length), u32(dim), u32(weight.offset), u32(ids.offset), u32(out.offset), u32(rows)], grid(ctx, ids.length * dim));
}

/** The link of position r: the next position with the same id (n if none), with this bit set when r is the id's first position. */
const FIRST = 0x80000000;

const BACKWARD: KernelSource = {
  name: 'embeddingBackward',
  bindings: ['read', 'read', 'read', 'rw'],
  code: /* wgsl */ `
struct Params { n: u32, dim: u32, wOff: u32, idOff: u32, linkOff: u32, dOff: u32 }
@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read> links: array<u32>;
@group(0) @binding(2) var<storage, read> dOut: array<f32>;
@group(0) @binding(3) var<storage, read_write> dWeight: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
${FLAT_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n * p.dim) { return; }
  let r = i / p.dim;
  let c = i % p.dim;
  let l = links[p.linkOff + r];
  if ((l & ${FIRST}u) == 0u) { return; } // a later occurrence: its first position adds it
  let w = p.wOff + u32(ids[p.idOff + r]) * p.dim + c;
  var sum = dWeight[w];
  var j = r;
  loop {
    sum += dOut[p.dOff + j * p.dim + c];
    j = links[p.linkOff + j] & ${FIRST - 1}u;
    if (j >= p.n) { break; }
  }
  dWeight[w] = sum;
}`,
};

/**
 * The chains of embeddingBackward, O(N): links[r] = the next position with
 * ids[r]'s token (N if none), with the high bit set on each token's first
 * position.
 */
export function embeddingLinks(ids: Int32Array): Uint32Array {
  const n = ids.length;
  const links = new Uint32Array(n);
  const later = new Map<number, number>();
  for (let r = n - 1; r >= 0; r--) {
    const id = ids[r]!;
    links[r] = later.get(id) ?? n;
    later.set(id, r);
  }
  for (const first of later.values()) links[first] = links[first]! | FIRST;
  return links;
}

/** dWeight[ids[r]] += dOut[r] for every row r, deterministically; `links` are embeddingLinks(ids) on the device. */
export function embeddingBackward(ctx: GpuContext, dOut: GpuSpan, ids: GpuSpan, links: GpuSpan, dWeight: GpuSpan, dim: number): void {
  const n = ids.length;
  if (n === 0) return;
  ctx.dispatch(BACKWARD, [ids.buffer, links.buffer, dOut.buffer, dWeight.buffer], [u32(n), u32(dim), u32(dWeight.offset), u32(ids.offset), u32(links.offset), u32(dOut.offset)], grid(ctx, n * dim));
}
