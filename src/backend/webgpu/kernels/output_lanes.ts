import type { KernelSource } from '../device.js';
import { addendAt, EPILOGUE_FIELDS, EPILOGUE_FN, epilogueBindings } from './gemm_epilogue.js';
import { FLAT_INDEX } from './grid.js';
import { variants } from './variants.js';
import { FOLD_FIELDS, foldPrologue, MAX_FOLD_ROWS } from './input_fold.js';
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
 * The kernel supplies its own bindings 0 … k−1, its fields of the Params
 * struct (`params`, which must hold rows, N and oOff; gemm_epilogue.ts's
 * EPILOGUE_FIELDS follow them), and two WGSL functions
 * (`functions(fold)`: the variant that folds its input's producer, below, reads its input through `folded`):
 *   fn partial(m: u32, n: u32, lane: u32) -> f32 — this lane's share of out[m, n], every LANES-th term from `lane`;
 *   fn finish(n: u32, s: f32) -> f32             — the whole sum, before the bias.
 * The skeleton adds the bias, addend and out bindings (k, k + 1, k + 2), the
 * uniform (k + 3), `byteAt` over a `w: array<u32>` of packed bytes, LANES,
 * and main().
 *
 * `fold` (where the input is float rows) gives a second variant, in which
 * the input holds a pending producer's input (input_fold.ts: a norm, SwiGLU):
 * the fold's buffers bind at k + 3 and k + 4, the uniform at k + 5,
 * FOLD_FIELDS join the Params, and main() first calls foldStats.
 */
export function outputLanes(
  name: string,
  inputs: readonly ('read' | 'rw')[],
  params: string,
  declarations: string,
  functions: (fold: boolean) => string,
  fold: { at: (row: string, k: string) => string; cols: string } | null = null,
): (lanes: number, fold?: boolean) => KernelSource {
  const k = inputs.length;
  const make = variants((v: { lanes: number; folds: boolean }) => `${v.lanes},${v.folds}`, ({ lanes, folds }) => {
    if (folds && !fold) throw new Error(`${name}: cannot fold its input's producer`);
    // Folding its input's producer, the fold's two bindings follow out, and the uniform moves after them.
    const uniform = folds ? k + 5 : k + 3;
    return {
      name: `${name}_l${lanes}${folds ? '_fold' : ''}`,
      bindings: [...inputs, 'read', 'read', 'rw', ...(folds ? (['read', 'read'] as const) : [])],
      code: /* wgsl */ `
struct Params { ${params}, ${EPILOGUE_FIELDS}${folds ? `, ${FOLD_FIELDS}` : ''} }
${declarations}
${epilogueBindings(k)}
@group(0) @binding(${k + 2}) var<storage, read_write> out: array<f32>;
@group(0) @binding(${uniform}) var<uniform> p: Params;
${EPILOGUE_FN}
${FLAT_INDEX}
${laneReduce(lanes)}
${folds ? foldPrologue({ binding: k + 3, wg: ROW_WG, rows: `min(p.rows, ${MAX_FOLD_ROWS}u)`, rowAt: (r) => r, at: fold!.at, cols: fold!.cols }) : ''}

/** The byte at index i of the packed weights (four to a u32 word, as the host's bytes lie), unsigned. */
fn byteAt(i: u32) -> u32 {
  return extractBits(w[i >> 2u], (i & 3u) * 8u, 8u);
}
${functions(folds)}

@compute @workgroup_size(${ROW_WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  ${folds ? 'foldStats(lid);' : ''}
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
    } satisfies KernelSource;
  });
  return (lanes, folds = false) => make({ lanes, folds });
}
