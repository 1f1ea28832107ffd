import type { RopeDims } from '../backend.js';

/**
 * Rotary position embedding's rotation (tensor/ops/rope.ts explains RoPE):
 * plain loops over rows, heads and channel pairs, the reference for the
 * other backends. Pair i is rotated by the angle whose cos and sin sit at
 * [position, i] of the tables.
 */
export function rope(src: Float32Array, dst: Float32Array, cos: Float32Array, sin: Float32Array, d: RopeDims, direction: 1 | -1, accumulate: boolean): void {
  const { B, T, nHead: H, headDim: D } = d;
  const half = D / 2;
  const perRow = cos.length !== T * half;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        const o = ((b * T + t) * H + h) * D;
        const a = (perRow ? b * T + t : t) * half;
        for (let i = 0; i < half; i++) {
          const c = cos[a + i]!;
          const s = direction * sin[a + i]!;
          const i0 = o + (d.layout === 'interleaved' ? 2 * i : i);
          const i1 = o + (d.layout === 'interleaved' ? 2 * i + 1 : i + half);
          const x0 = src[i0]!;
          const x1 = src[i1]!;
          const y0 = x0 * c - x1 * s;
          const y1 = x0 * s + x1 * c;
          dst[i0] = accumulate ? dst[i0]! + y0 : y0;
          dst[i1] = accumulate ? dst[i1]! + y1 : y1;
        }
      }
    }
  }
}
