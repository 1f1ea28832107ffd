import type { KernelSource } from '../device.js';

/**
 * Compiled variants of a generated kernel: WGSL is written per variant (tile
 * shape, transposes, vec4 or scalar bindings), and the KernelSource of each is
 * made once and kept, so that GpuContext finds its pipeline by the object
 * itself on every later dispatch.
 */

/** `build` memoized by `key`: the same KernelSource object for the same variant. */
export function variants<V>(key: (v: V) => string, build: (v: V) => KernelSource): (v: V) => KernelSource {
  const made = new Map<string, KernelSource>();
  return (v) => {
    const k = key(v);
    let s = made.get(k);
    if (!s) made.set(k, (s = build(v)));
    return s;
  };
}

/** Whether offsets, strides and extents are whole vec4s: an operand may then be bound as array<vec4<f32>>. */
export const aligned = (...xs: number[]) => xs.every((x) => x % 4 === 0);
