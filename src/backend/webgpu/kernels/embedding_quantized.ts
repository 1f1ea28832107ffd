import { type GpuContext, type GpuSpan, type KernelSource, u32 } from '../device.js';
import { FLAT_INDEX, grid, WG } from './grid.js';
import { KQUANT_FUNCTIONS } from './linear_kquant.js';

/** A token-table lookup by ids on the device: out[r, c] = value(ids[r], c), `value` dequantizing as its format says. */
function lookup(name: string, functions: string, value: string): KernelSource {
  return {
    name,
    bindings: ['read', 'read', 'rw'],
    code: /* wgsl */ `
struct Params { n: u32, cols: u32, idOff: u32, outOff: u32, rows: u32, kind: u32 }
@group(0) @binding(0) var<storage, read> w: array<u32>;
@group(0) @binding(1) var<storage, read> ids: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
${FLAT_INDEX}

fn byteAt(i: u32) -> u32 {
  return extractBits(w[i >> 2u], (i & 3u) * 8u, 8u);
}
${functions}

/** Value c of the table's row, dequantized. */
fn value(row: u32, c: u32) -> f32 {
  ${value}
}

@compute @workgroup_size(${WG})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = flat(gid, nwg);
  if (i >= p.n * p.cols) { return; }
  let row = min(u32(ids[p.idOff + i / p.cols]), p.rows - 1u); // an id never checked on the host stays in the table
  out[p.outOff + i] = value(row, i % p.cols);
}`,
  };
}

/**
 * Rows of a q8_0 or q4_0 token table looked up by ids kept on the device
 * (argmaxRows' picks, as floats), dequantized as they are read:
 * js/embedding.ts's embeddingQuantizedStored, the reference. The table is the
 * bytes linear_quantized.ts reads (ggml's blocks, row by row, four bytes to a
 * u32 word), so a tied GGUF head and its lookup share one upload. Each value
 * is q·d with d the block's f16 scale: q has at most 8 bits and d 11, so the
 * product is exact in f32 and equal to js's bit for bit.
 */
const LOOKUP = lookup('embeddingQuantizedStored', '', /* wgsl */ `let blockBytes = select(34u, 18u, p.kind != 0u);
  let at = (row * (p.cols / 32u) + c / 32u) * blockBytes;
  let d = unpack2x16float(byteAt(at) | (byteAt(at + 1u) << 8u)).x;
  let j = c % 32u;
  var q: i32;
  if (p.kind != 0u) {
    let byte = byteAt(at + 2u + j % 16u);
    q = i32(select(byte & 15u, byte >> 4u, j >= 16u)) - 8;
  } else {
    q = extractBits(i32(byteAt(at + 2u + j)), 0u, 8u);
  }
  return f32(q) * d;`);

/**
 * The same for a q4_k or q6_k table (a Q4_K_M file's token table is often
 * q6_k), each value dequantized as linear_kquant.ts's product reads it:
 * d·sc rounded to f32, times the quant (less dmin·m for q4_k), as js.
 */
const LOOKUP_K = lookup('embeddingKQuantStored', KQUANT_FUNCTIONS, 'return kValue(kRun(p.kind, row, p.cols / 256u, c / 32u), c % 32u);');

/** out[r] = row ids[r] of the table in `w` (rows × cols, in ggml's blocks of `type`), dequantized, for the first `ids.length` ids. */
export function embeddingQuantizedStored(ctx: GpuContext, w: GPUBuffer, type: 'q8_0' | 'q4_0' | 'q4_k' | 'q6_k', rows: number, cols: number, ids: GpuSpan, out: GpuSpan): void {
  const kind = type === 'q4_0' || type === 'q6_k' ? 1 : 0;
  const kernel = type === 'q4_k' || type === 'q6_k' ? LOOKUP_K : LOOKUP;
  ctx.dispatch(kernel, [w, ids.buffer, out.buffer], [u32(ids.length), u32(cols), u32(ids.offset), u32(out.offset), u32(rows), u32(kind)], grid(ctx, ids.length * cols));
}
