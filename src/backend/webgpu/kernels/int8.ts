import { type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { grid } from './grid.js';
import { ROW_WG, WORKGROUP_REDUCE } from './workgroup_reduce.js';

/**
 * out[rows, N] = (x[rows, K]·Wᵀ)∘scale + bias with W int8 [N, K] and one fp32
 * scale per output row (js/int8.ts): the decode-time product of an int8
 * model. The weights stay int8 on the GPU, four to a u32 word (the Int8Array's
 * bytes as they are), and are widened on the fly, so decoding reads a
 * quarter of the bytes of fp32 weights. One workgroup per output element:
 * its invocations split the K products and add them by a tree reduction.
 */

const INT8: KernelSource = {
  name: 'linearInt8',
  bindings: ['read', 'read', 'read', 'read', 'rw'],
  code: /* wgsl */ `
struct Params { rows: u32, K: u32, N: u32, hasBias: u32, xOff: u32, wByteOff: u32, sOff: u32, bOff: u32, oOff: u32 }
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;
@group(0) @binding(5) var<uniform> p: Params;
${WORKGROUP_REDUCE}

/** The int8 at byte index i of the weights, sign-extended. */
fn weight(i: u32) -> f32 {
  return f32(extractBits(i32(w[i >> 2u]), (i & 3u) * 8u, 8u));
}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let o = wid.x + wid.y * nwg.x; // m·N + n
  if (o >= p.rows * p.N) { return; }
  let m = o / p.N;
  let n = o % p.N;
  var s = 0.0;
  for (var k = lid; k < p.K; k += ${ROW_WG}u) { s = fma(x[p.xOff + m * p.K + k], weight(p.wByteOff + n * p.K + k), s); }
  s = reduceSum(s, lid);
  if (lid == 0u) {
    var y = s * scale[p.sOff + n];
    if (p.hasBias != 0u) { y += bias[p.bOff + n]; }
    out[p.oOff + o] = y;
  }
}`,
};

/**
 * `w` is a buffer holding the int8 weights' bytes (an Int8Array uploaded as
 * is, e.g. ctx.upload(new Uint32Array(padded.buffer))), from byte `wByteOffset`.
 */
export function linearInt8(
  ctx: GpuContext, x: GpuSpan, rows: number, K: number, w: GPUBuffer, wByteOffset: number,
  scale: GpuSpan, bias: GpuSpan | null, out: GpuSpan, N: number,
): void {
  ctx.dispatch(
    INT8,
    [x.buffer, w, scale.buffer, bias?.buffer, out.buffer],
    [u32(rows), u32(K), u32(N), u32(bias ? 1 : 0), u32(x.offset), u32(wByteOffset), u32(scale.offset), u32(bias?.offset ?? 0), u32(out.offset)],
    grid(ctx, rows * N, 1),
  );
}
