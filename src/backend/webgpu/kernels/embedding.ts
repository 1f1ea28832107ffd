import { type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX, grid, WG } from './grid.js';

/**
 * Embedding lookup and its gradient (js/embedding.ts).
 *
 * Backward is a scatter-add: a token that appears several times collects
 * every one of its rows' gradients. WGSL has no float atomics, and atomics
 * would make the sum's order (and so its rounding) change from run to run.
 * Instead the positions of each token are chained: a first kernel gives every
 * position the next position holding the same token (and marks the first
 * one); a second, one invocation per (first position, column), walks the chain
 * in ascending order adding into dWeight. That is the order js adds in, with
 * the same float32 rounding at every step: the result is bit-identical.
 * Finding the links scans the ids (N² comparisons of integers: 67 M for
 * 8 192 tokens, well under a millisecond on a GPU).
 */

const FORWARD: KernelSource = {
  name: 'embeddingForward',
  bindings: ['read', 'read', 'rw'],
  code: /* wgsl */ `
struct Params { n: u32, dim: u32, wOff: u32, idOff: u32, outOff: u32 }
@group(0) @binding(0) var<storage, read> weight: array<f32>;
@group(0) @binding(1) var<storage, read> ids: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${FLAT_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n * p.dim) { return; }
  let r = i / p.dim;
  let c = i % p.dim;
  out[p.outOff + i] = weight[p.wOff + u32(ids[p.idOff + r]) * p.dim + c];
}`,
};

/** out[r] = weight[ids[r]] for each of the ids' rows of `dim` values. */
export function embeddingForward(ctx: GpuContext, weight: GpuSpan, ids: GpuSpan, out: GpuSpan, dim: number): void {
  ctx.dispatch(FORWARD, [weight.buffer, ids.buffer, out.buffer], [u32(ids.length), u32(dim), u32(weight.offset), u32(ids.offset), u32(out.offset)], grid(ctx, ids.length * dim));
}

/** The link of position r: the next position with the same id (n if none), with this bit set when r is the id's first position. */
const FIRST = 0x80000000;

const BACKWARD_CODE = /* wgsl */ `
struct Params { n: u32, dim: u32, wOff: u32, idOff: u32, dOff: u32 }
@group(0) @binding(0) var<storage, read> ids: array<i32>;
@group(0) @binding(1) var<storage, read_write> links: array<u32>;
@group(0) @binding(2) var<storage, read> dOut: array<f32>;
@group(0) @binding(3) var<storage, read_write> dWeight: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;
${FLAT_INDEX}
@compute @workgroup_size(${WG})
fn link(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = flat(gid, nwg);
  if (r >= p.n) { return; }
  let id = ids[p.idOff + r];
  var first = ${FIRST}u;
  for (var j = 0u; j < r; j++) { if (ids[p.idOff + j] == id) { first = 0u; break; } }
  var next = p.n;
  for (var j = r + 1u; j < p.n; j++) { if (ids[p.idOff + j] == id) { next = j; break; } }
  links[r] = next | first;
}

@compute @workgroup_size(${WG})
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n * p.dim) { return; }
  let r = i / p.dim;
  let c = i % p.dim;
  let l = links[r];
  if ((l & ${FIRST}u) == 0u) { return; } // a later occurrence: its first position adds it
  let w = p.wOff + u32(ids[p.idOff + r]) * p.dim + c;
  var sum = dWeight[w];
  var j = r;
  loop {
    sum += dOut[p.dOff + j * p.dim + c];
    j = links[j] & ${FIRST - 1}u;
    if (j >= p.n) { break; }
  }
  dWeight[w] = sum;
}`;

const BINDINGS = ['read', 'rw', 'read', 'rw'] as const;
const LINK: KernelSource = { name: 'embeddingBackwardLinks', entry: 'link', code: BACKWARD_CODE, bindings: BINDINGS };
const GATHER: KernelSource = { name: 'embeddingBackward', entry: 'gather', code: BACKWARD_CODE, bindings: BINDINGS };

/** dWeight[ids[r]] += dOut[r] for every row r, deterministically. */
export function embeddingBackward(ctx: GpuContext, dOut: GpuSpan, ids: GpuSpan, dWeight: GpuSpan, dim: number): void {
  const n = ids.length;
  if (n === 0) return;
  const links = ctx.buffer(n * 4);
  const buffers = [ids.buffer, links, dOut.buffer, dWeight.buffer];
  const params = [u32(n), u32(dim), u32(dWeight.offset), u32(ids.offset), u32(dOut.offset)];
  ctx.dispatch(LINK, buffers, params, grid(ctx, n));
  ctx.dispatch(GATHER, buffers, params, grid(ctx, n * dim));
  ctx.release(links);
}
