import type { KernelSource } from '../device.js';
import { addendAt, EPILOGUE_FN, epilogueBindings } from './gemm_epilogue.js';
import { FLAT_INDEX } from './grid.js';
import { variants } from './variants.js';
import { laneReduce, ROW_WG } from './workgroup_reduce.js';

/**
 * The skeleton the decode-time products share (int8.ts, linear_quantized.ts):
 * out[rows, N] = epilogue(finish(n, Σ)) — the bias, an activation and an
 * addend, as gemm_epilogue.ts applies them — with A GROUP OF `lanes`
 * INVOCATIONS PER OUTPUT ELEMENT, ROW_WG / lanes outputs to a workgroup.
 * At batch 1 there are only N outputs, too few for one invocation each to
 * fill a GPU, so each output's K-long dot product is split over its lanes
 * and added by a tree (workgroup_reduce.ts's laneSum). The caller sizes the
 * lanes by the length of the dot (`rowLanes`): a q8_0 row of 576 values is 18
 * blocks, which kept 18 of a whole workgroup's 256 invocations busy.
 *
 * The kernel supplies its own bindings 0 … k−1 and its Params struct
 * (which must hold rows, N, oOff and, last, gemm_epilogue.ts's EPILOGUE_FIELDS), and two WGSL functions:
 *   fn partial(m: u32, n: u32, lane: u32) -> f32 — this lane's share of out[m, n], every LANES-th term from `lane`;
 *   fn finish(n: u32, s: f32) -> f32             — the whole sum, before the bias.
 * The skeleton adds the bias, addend and out bindings (k, k + 1, k + 2), the
 * uniform (k + 3), `byteAt` over a `w: array<u32>` of packed bytes, LANES,
 * and main().
 */
export function outputLanes(name: string, inputs: readonly ('read' | 'rw')[], declarations: string, functions: string): (lanes: number) => KernelSource {
  const k = inputs.length;
  return variants(String, (lanes: number) => ({
    name: `${name}_l${lanes}`,
    bindings: [...inputs, 'read', 'read', 'rw'],
    code: /* wgsl */ `
${declarations}
${epilogueBindings(k)}
@group(0) @binding(${k + 2}) var<storage, read_write> out: array<f32>;
@group(0) @binding(${k + 3}) var<uniform> p: Params;
${EPILOGUE_FN}
${FLAT_INDEX}
${laneReduce(lanes)}

/** The byte at index i of the packed weights (four to a u32 word, as the host's bytes lie), unsigned. */
fn byteAt(i: u32) -> u32 {
  return extractBits(w[i >> 2u], (i & 3u) * 8u, 8u);
}
${functions}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let o = laneRow(wid, nwg, lid); // m·N + n
  let inside = o < p.rows * p.N;
  let n = o % p.N;
  let m = o / p.N;
  // An output past the last adds nothing, but reduces with its workgroup.
  let s = laneSum(select(0.0, partial(m, n, lid % LANES), inside), lid);
  if (inside && lid % LANES == 0u) {
    out[p.oOff + o] = epilogue(finish(n, s), n, ${addendAt('0u', 'm', 'n')});
  }
}`,
  }));
}
