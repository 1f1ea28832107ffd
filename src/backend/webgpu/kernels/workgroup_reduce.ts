import type { GpuContext } from '../device.js';
import { grid } from './grid.js';

/**
 * WGSL for reducing one value per invocation (sum or max) across the
 * invocations that share a result: a tree in workgroup memory, log2(n) steps,
 * each halving the active invocations, with a barrier between steps. Every
 * invocation of the workgroup must call a reduction (they contain barriers),
 * and every invocation receives its result.
 *
 * - `WORKGROUP_REDUCE`: the whole workgroup of ROW_WG invocations gives one
 *   result (reduceSum, reduceMax): the two-pass device reductions (gradient
 *   norm, the loss's sum over rows).
 * - `laneReduce(lanes)`: the workgroup holds ROW_WG / lanes rows of `lanes`
 *   invocations each, and each row gets its own result (laneSum, laneMax).
 *   The row kernels (norms, softmax, cross-entropy, l2-normalize) size their
 *   rows' lanes by width (`rowLanes`), the decode products (output_lanes.ts)
 *   each output's by the length of its dot product. A LayerNorm row of 128
 *   values has 32 lanes and shares its workgroup with 7 others, where it used
 *   to hold a workgroup of 256 alone, half of it idle, for 2 × 9 barriers.
 */

/** Invocations per workgroup of the row kernels. */
export const ROW_WG = 256;

/** The tree over groups of `width` invocations (`lane`: the index within its group), values in `buf`. */
const tree = (buf: string, width: number, lane: string, combine: (a: string, b: string) => string) => /* wgsl */ `
  ${buf}[lid] = v;
  workgroupBarrier();
  for (var s = ${width / 2}u; s > 0u; s = s >> 1u) {
    if (${lane} < s) { ${buf}[lid] = ${combine(`${buf}[lid]`, `${buf}[lid + s]`)}; }
    workgroupBarrier();
  }`;

const sum = (a: string, b: string) => `${a} + ${b}`;
const max = (a: string, b: string) => `max(${a}, ${b})`;

export const WORKGROUP_REDUCE = /* wgsl */ `
var<workgroup> red: array<f32, ${ROW_WG}>;

fn reduceSum(v: f32, lid: u32) -> f32 {${tree('red', ROW_WG, 'lid', sum)}
  // workgroupUniformLoad: the result is uniform, so callers may branch on it around barriers.
  let r = workgroupUniformLoad(&red[0]);
  workgroupBarrier(); // red is reused by the next call
  return r;
}

fn reduceMax(v: f32, lid: u32) -> f32 {${tree('red', ROW_WG, 'lid', max)}
  let r = workgroupUniformLoad(&red[0]);
  workgroupBarrier();
  return r;
}
`;

/**
 * Lanes per row for rows of `cols` values: about 8 values a lane, a power of
 * two from 32 (a warp; narrower rows leave lanes idle) to ROW_WG.
 */
export function rowLanes(cols: number): number {
  let lanes = 32;
  while (lanes < ROW_WG && lanes * 8 < cols) lanes *= 2;
  return lanes;
}

/** Workgroups for `rows` rows of `lanes` invocations (ROW_WG / lanes rows a workgroup). */
export function rowGroups(ctx: GpuContext, rows: number, lanes: number): [number, number] {
  return grid(ctx, rows, ROW_WG / lanes);
}

/**
 * WGSL for rows of `lanes` invocations (needs FLAT_INDEX): `laneRow` is the
 * invocation's row and `LANES` its stride along the row (its lane is
 * lid % LANES); laneSum and laneMax reduce over the row's lanes. A row past
 * the last still calls them (the barriers are the workgroup's): kernels guard
 * its loads and stores, never return early.
 */
export function laneReduce(lanes: number): string {
  return /* wgsl */ `
const LANES = ${lanes}u;
var<workgroup> laneRed: array<f32, ${ROW_WG}>;

fn laneRow(wid: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 { return flatGroup(wid, nwg) * ${ROW_WG / lanes}u + lid / LANES; }

fn laneSum(v: f32, lid: u32) -> f32 {${tree('laneRed', lanes, 'lid % LANES', sum)}
  let r = laneRed[lid - lid % LANES];
  workgroupBarrier(); // laneRed is reused by the next call
  return r;
}

fn laneMax(v: f32, lid: u32) -> f32 {${tree('laneRed', lanes, 'lid % LANES', max)}
  let r = laneRed[lid - lid % LANES];
  workgroupBarrier();
  return r;
}
`;
}
