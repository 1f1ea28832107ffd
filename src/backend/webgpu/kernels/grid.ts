import type { GpuContext } from '../device.js';

/**
 * Launch geometry shared by the kernels: one invocation per element, or one
 * workgroup per row, for counts beyond the 65 535 workgroups a dimension may
 * hold (a [B·T, vocab] logits tensor has hundreds of millions of elements).
 * The workgroups are laid out on an x × y grid and each kernel recovers its
 * flat index from the WGSL below.
 */

/** Invocations per workgroup for the one-element-per-invocation kernels. */
export const WG = 256;

/** WGSL: `flat(gid, nwg)` is the invocation's index in a grid made by `grid(...)` with `WG` invocations per workgroup. */
export const FLAT_INDEX = /* wgsl */ `
fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * ${WG}u; }
fn flatGroup(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.x + wid.y * nwg.x; }
`;

/** Workgroups for `count` items of `perGroup` each: [x, y] with x within the device's limit. */
export function grid(ctx: GpuContext, count: number, perGroup = WG): [number, number] {
  const groups = Math.ceil(count / perGroup);
  const max = ctx.limits.maxComputeWorkgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}
