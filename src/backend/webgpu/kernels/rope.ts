import type { RopeDims } from '../../backend.js';
import { f32, type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX, grid, WG } from './grid.js';
import { deferInput } from './input_fold.js';

/**
 * Rotary position embedding on the GPU, the loop of js/rope.ts: one
 * invocation per (row, head, channel pair) rotates the pair by its angle
 * (direction −1: the inverse rotation, the backward pass). The cos and sin
 * tables come from the host (they depend only on positions and frequencies)
 * staged for the call in the context's upload ring (one buffer, both offsets parameters).
 */
const ROPE: KernelSource = {
  name: 'rope',
  bindings: ['read', 'read', 'rw'],
  code: /* wgsl */ `
struct Params { n: u32, xOff: u32, outOff: u32, T: u32, H: u32, D: u32, hd: u32, perRow: u32, interleaved: u32, accumulate: u32, sinOff: u32, dir: f32, cosOff: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> cs: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${FLAT_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n) { return; }
  let pair = i % p.hd;
  let rowHead = i / p.hd;
  let h = rowHead % p.H;
  let row = rowHead / p.H; // b·T + t
  let o = (row * p.H + h) * p.D;
  let a = select(row % p.T, row, p.perRow != 0u) * p.hd + pair; // shared or per-row positions
  let c = cs[p.cosOff + a];
  let s = p.dir * cs[p.sinOff + a];
  let i0 = o + select(pair, 2u * pair, p.interleaved != 0u);
  let i1 = o + select(pair + p.hd, 2u * pair + 1u, p.interleaved != 0u);
  let x0 = x[p.xOff + i0];
  let x1 = x[p.xOff + i1];
  var y0 = x0 * c - x1 * s;
  var y1 = x0 * s + x1 * c;
  if (p.accumulate != 0u) { y0 += out[p.outOff + i0]; y1 += out[p.outOff + i1]; }
  out[p.outOff + i0] = y0;
  out[p.outOff + i1] = y1;
}`,
};

/**
 * out (+)= R(direction·angle)·x for each channel pair of every head of every
 * row. A decode step's rotation of its new queries or keys (at most 8 rows,
 * forward, into a fresh output) is deferred instead: the cached attention
 * that reads them rotates them itself (input_fold.ts, attention_cached.ts).
 */
export function rope(ctx: GpuContext, x: GpuSpan, out: GpuSpan, cos: Float32Array, sin: Float32Array, d: RopeDims, direction: 1 | -1, accumulate: boolean): void {
  const run = () => record(ctx, x, out, cos, sin, d, direction, accumulate);
  if (direction === 1 && !accumulate && deferInput(ctx, { kind: 'rope', input: x, out, cos, sin, dims: d, rows: d.B * d.T, cols: d.nHead * d.headDim }, [], run)) return;
  run();
}

/** Whether a table of `cos` is one row of angles per position slot shared by the batch (else one per row). */
export const sharedAngles = (cos: Float32Array, d: RopeDims) => cos.length === (d.T * d.headDim) / 2;

function record(ctx: GpuContext, x: GpuSpan, out: GpuSpan, cos: Float32Array, sin: Float32Array, d: RopeDims, direction: 1 | -1, accumulate: boolean): void {
  const half = d.headDim / 2;
  const n = d.B * d.T * d.nHead * half;
  const run = (cs: GPUBuffer, cosOff: number, sinOff: number) =>
    ctx.dispatch(ROPE, [x.buffer, cs, out.buffer], [
      u32(n), u32(x.offset), u32(out.offset), u32(d.T), u32(d.nHead), u32(d.headDim), u32(half),
      u32(sharedAngles(cos, d) ? 0 : 1), u32(d.layout === 'interleaved' ? 1 : 0), u32(accumulate ? 1 : 0), u32(sinOff), f32(direction), u32(cosOff),
    ], grid(ctx, n));
  ctx.withStaged(cos, (c) =>
    ctx.withStaged(sin, (s) => {
      if (c.buffer === s.buffer) return run(c.buffer, c.offset, s.offset);
      // The ring filled between the two: one table, cos first, in a buffer of its own.
      const table = new Float32Array(cos.length * 2);
      table.set(cos, 0);
      table.set(sin, cos.length);
      ctx.withStaged(table, (t) => run(t.buffer, t.offset, t.offset + cos.length));
    }));
}
