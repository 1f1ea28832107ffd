import type { KernelSource } from '../device.js';
import { addendAt, EPILOGUE_FN, epilogueBindings } from './gemm_epilogue.js';
import { ROW_WG, WORKGROUP_REDUCE } from './workgroup_reduce.js';

/**
 * The skeleton the decode-time products share (int8.ts, linear_quantized.ts):
 * out[rows, N] = epilogue(finish(n, Σ)) — the bias, an activation and an
 * addend, as gemm_epilogue.ts applies them — with ONE WORKGROUP PER OUTPUT
 * ELEMENT.
 * At batch 1 there are only N outputs, too few for one invocation each to
 * fill a GPU, so each output's K-long dot product is split over the
 * workgroup's invocations and added by a tree (workgroup_reduce.ts).
 *
 * The kernel supplies its own bindings 0 … k−1 and its Params struct
 * (which must hold rows, N, oOff and, last, gemm_epilogue.ts's EPILOGUE_FIELDS), and two WGSL functions:
 *   fn partial(m: u32, n: u32, lid: u32) -> f32  — this invocation's share of out[m, n];
 *   fn finish(n: u32, s: f32) -> f32             — the whole sum, before the bias.
 * The skeleton adds the bias, addend and out bindings (k, k + 1, k + 2), the
 * uniform (k + 3), `byteAt` over a `w: array<u32>` of packed bytes, and main().
 */
export function outputPerWorkgroup(name: string, inputs: readonly ('read' | 'rw')[], declarations: string, functions: string): KernelSource {
  const k = inputs.length;
  return {
    name,
    bindings: [...inputs, 'read', 'read', 'rw'],
    code: /* wgsl */ `
${declarations}
${epilogueBindings(k)}
@group(0) @binding(${k + 2}) var<storage, read_write> out: array<f32>;
@group(0) @binding(${k + 3}) var<uniform> p: Params;
${EPILOGUE_FN}
${WORKGROUP_REDUCE}

/** The byte at index i of the packed weights (four to a u32 word, as the host's bytes lie), unsigned. */
fn byteAt(i: u32) -> u32 {
  return extractBits(w[i >> 2u], (i & 3u) * 8u, 8u);
}
${functions}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let o = wid.x + wid.y * nwg.x; // m·N + n
  if (o >= p.rows * p.N) { return; } // uniform across the workgroup: the barriers below are safe
  let n = o % p.N;
  let m = o / p.N;
  let s = reduceSum(partial(m, n, lid), lid);
  if (lid == 0u) {
    out[p.oOff + o] = epilogue(finish(n, s), n, ${addendAt('0u', 'm', 'n')});
  }
}`,
  };
}
