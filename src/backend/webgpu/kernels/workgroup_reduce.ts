/**
 * WGSL for reducing one value per invocation to one per workgroup (sum or
 * max), the building block of the row kernels (softmax, norms,
 * cross-entropy) and of the two-pass device reductions (gradient norm, loss
 * sum). A tree in workgroup memory: log2(256) steps, each halving the active
 * invocations, with a barrier between steps. Every invocation must call it
 * (it contains barriers), and every invocation receives the result.
 */

/** Invocations per workgroup of the row kernels. */
export const ROW_WG = 256;

export const WORKGROUP_REDUCE = /* wgsl */ `
var<workgroup> red: array<f32, ${ROW_WG}>;

fn reduceSum(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = red[lid] + red[lid + s]; }
    workgroupBarrier();
  }
  // workgroupUniformLoad: the result is uniform, so callers may branch on it around barriers.
  let r = workgroupUniformLoad(&red[0]);
  workgroupBarrier(); // red is reused by the next call
  return r;
}

fn reduceMax(v: f32, lid: u32) -> f32 {
  red[lid] = v;
  workgroupBarrier();
  for (var s = ${ROW_WG / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { red[lid] = max(red[lid], red[lid + s]); }
    workgroupBarrier();
  }
  let r = workgroupUniformLoad(&red[0]);
  workgroupBarrier();
  return r;
}
`;
