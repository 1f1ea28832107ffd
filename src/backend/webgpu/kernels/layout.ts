import type { RowsLayout } from '../../backend.js';
import { strides } from '../../js/layout.js';
import { type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { DIM, dims, MAX_RANK, padded } from './elementwise.js';
import { FLAT_INDEX, grid, WG } from './grid.js';

/**
 * The layout copies of js/layout.ts, one invocation per destination element:
 * permute (transpose) gathers each element through the source strides of
 * the permuted axes; copyRows moves a strided block (slice, concat and their
 * gradients). Every destination element has one source, so the sums of the
 * accumulating forms round exactly as js's.
 */

const PERMUTE: KernelSource = {
  name: 'permute',
  bindings: ['read', 'rw'],
  code: /* wgsl */ `
struct Params { ${dims('shape')}, ${dims('walk')}, n: u32, srcOff: u32, dstOff: u32, accumulate: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
${FLAT_INDEX}
${DIM}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n) { return; }
  // The destination index, digit by digit from the last axis, each digit times its axis's stride in the source.
  var rest = i;
  var s = p.srcOff;
  for (var d = ${MAX_RANK - 1}i; d >= 0; d--) {
    let size = at(p.shape, u32(d));
    s += (rest % size) * at(p.walk, u32(d));
    rest = rest / size;
  }
  var v = src[s];
  if (p.accumulate != 0u) { v += dst[p.dstOff + i]; }
  dst[p.dstOff + i] = v;
}`,
};

/** dst (+)= src [shape] with its axes permuted (dst's axis i is src's axis perm[i]). */
export function permute(ctx: GpuContext, src: GpuSpan, shape: readonly number[], perm: readonly number[], dst: GpuSpan, accumulate: boolean): void {
  if (shape.length > MAX_RANK) throw new Error(`webgpu permute: rank ${shape.length} is over ${MAX_RANK}`);
  const inStrides = strides(shape);
  const n = shape.reduce((a, b) => a * b, 1);
  ctx.dispatch(
    PERMUTE,
    [src.buffer, dst.buffer],
    [...padded(perm.map((p) => shape[p]!), 1), ...padded(perm.map((p) => inStrides[p]!), 0), u32(n), u32(src.offset), u32(dst.offset), u32(accumulate ? 1 : 0)],
    grid(ctx, n),
  );
}

const COPY_ROWS: KernelSource = {
  name: 'copyRows',
  bindings: ['read', 'rw'],
  code: /* wgsl */ `
struct Params { rows: u32, cols: u32, srcOff: u32, srcStride: u32, dstOff: u32, dstStride: u32, accumulate: u32 }
@group(0) @binding(0) var<storage, read> src: array<f32>;
@group(0) @binding(1) var<storage, read_write> dst: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
${FLAT_INDEX}
@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.rows * p.cols) { return; }
  let r = i / p.cols;
  let c = i % p.cols;
  let d = p.dstOff + r * p.dstStride + c;
  var v = src[p.srcOff + r * p.srcStride + c];
  if (p.accumulate != 0u) { v += dst[d]; }
  dst[d] = v;
}`,
};

/** dst[dstOffset + r·dstStride + i] (+)= src[srcOffset + r·srcStride + i] (offsets relative to the spans). */
export function copyRows(ctx: GpuContext, src: GpuSpan, dst: GpuSpan, l: RowsLayout, accumulate: boolean): void {
  ctx.dispatch(
    COPY_ROWS,
    [src.buffer, dst.buffer],
    [u32(l.rows), u32(l.cols), u32(src.offset + l.srcOffset), u32(l.srcStride), u32(dst.offset + l.dstOffset), u32(l.dstStride), u32(accumulate ? 1 : 0)],
    grid(ctx, l.rows * l.cols),
  );
}
