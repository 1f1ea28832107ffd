import { type GpuContext, type GpuSpan, u32 } from '../device.js';
import { epilogueParams, type GpuProductEpilogue, rowsEpilogue } from './gemm_epilogue.js';
import { foldBuffers, foldedProductInput, foldParams } from './input_fold.js';
import { outputLanes } from './output_lanes.js';
import { rowGroups, rowLanes } from './workgroup_reduce.js';

/**
 * out[rows, N] = act((x[rows, K]·Wᵀ)∘scale + bias) (+ addend) with W int8 [N, K] and one fp32
 * scale per output row (js/int8.ts): the decode-time product of an int8
 * model. The weights stay int8 on the GPU, four to a u32 word (the Int8Array's
 * bytes as they are), and are widened on the fly, so decoding reads a
 * quarter of the bytes of fp32 weights. A group of lanes per output element
 * (output_lanes.ts, about 8 products a lane) splits its K products.
 */

const int8Product = outputLanes(
  'linearInt8',
  ['read', 'read', 'read'],
  'rows: u32, K: u32, N: u32, xOff: u32, wByteOff: u32, sOff: u32, oOff: u32',
  /* wgsl */ `
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> scale: array<f32>;`,
  (fold) => /* wgsl */ `
/** The int8 at byte index i of the weights, sign-extended. */
fn weight(i: u32) -> f32 {
  return f32(extractBits(i32(byteAt(i)), 0u, 8u));
}

fn partial(m: u32, n: u32, lane: u32) -> f32 {
  var s = 0.0;
  for (var k = lane; k < p.K; k += LANES) { s = fma(${fold ? 'folded(m, m, k, x[p.xOff + m * p.K + k])' : 'x[p.xOff + m * p.K + k]'}, weight(p.wByteOff + n * p.K + k), s); }
  return s;
}

fn finish(n: u32, s: f32) -> f32 {
  return s * scale[p.sOff + n];
}`,
  { at: (row, k) => `x[p.xOff + (${row}) * p.K + (${k})]`, cols: 'p.K' },
);

/**
 * `w` is a buffer holding the int8 weights' bytes (an Int8Array uploaded as
 * is, e.g. ctx.upload(new Uint32Array(padded.buffer))), from byte `wByteOffset`.
 */
export function linearInt8(
  ctx: GpuContext, x: GpuSpan, rows: number, K: number, w: GPUBuffer, wByteOffset: number,
  scale: GpuSpan, bias: GpuSpan | null, out: GpuSpan, N: number, epilogue: GpuProductEpilogue | null = null,
): void {
  const e = rowsEpilogue(bias, N, epilogue);
  const lanes = rowLanes(K);
  // A decode step's norm or SwiGLU left pending for this product: x is computed from its input as it is read (input_fold.ts).
  const groups = rowGroups(ctx, rows * N, lanes);
  const fold = foldedProductInput(ctx, x.buffer, x.offset, rows, K, groups[0] * groups[1]);
  const input = fold ? fold.input : x;
  ctx.dispatch(
    int8Product(lanes, fold !== null),
    [input.buffer, w, scale.buffer, e.bias, e.addend?.buffer, out.buffer, ...(fold ? foldBuffers(fold) : [])],
    [u32(rows), u32(K), u32(N), u32(input.offset), u32(wByteOffset), u32(scale.offset), u32(out.offset), ...epilogueParams(e), ...(fold ? foldParams(fold, K) : [])],
    groups,
  );
}
