import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

/**
 * Rotary position embedding (RoPE, Su et al. 2021): inside each head, the
 * channel pairs (2i, 2i+1) of the vector at position p are rotated by the
 * angle p·θᵢ with θᵢ = base^(−2i/headDim). A query at p and a key at p'
 * then meet at an angle that depends only on p − p', so attention sees
 * relative positions without any learned table.
 *
 * x is [B, T, nHead·headDim]; positions gives each of the T slots its
 * position (default 0 … T−1), or each of the B·T rows its own (left-padded
 * batches, continuous batching). A rotation's inverse is the rotation by −angle,
 * which is the whole backward pass.
 */
export function rope(x: Tensor, nHead: number, positions?: ArrayLike<number>, base = 10000): Tensor {
  if (x.rank !== 3) throw new Error(`rope expects [B, T, C], got [${x.shape}]`);
  const [B, T, C] = x.shape as [number, number, number];
  const D = C / nHead;
  if (!Number.isInteger(D) || D % 2 !== 0) throw new Error(`rope needs an even head size; ${C} channels over ${nHead} heads gives ${C / nHead}`);
  const pos = positions ?? Int32Array.from({ length: T }, (_, i) => i);
  if (pos.length !== T && pos.length !== B * T) throw new Error(`rope: ${pos.length} positions for ${B}×${T} slots`);
  const { cos, sin } = ropeAngles(pos, D, base);
  const out = Tensor.zeros(x.shape);
  rotate(x.data, out.data, cos, sin, B, T, nHead, D, 1);
  return record(out, [x], 'rope', () => {
    if (x.requiresGrad) rotate(out.grad!, x.ensureGrad(), cos, sin, B, T, nHead, D, -1, true);
  });
}

/** cos and sin of p·θᵢ for every position given and pair: [positions, D/2] each. */
function ropeAngles(pos: ArrayLike<number>, D: number, base: number): { cos: Float32Array; sin: Float32Array } {
  const half = D / 2;
  const cos = new Float32Array(pos.length * half);
  const sin = new Float32Array(pos.length * half);
  for (let t = 0; t < pos.length; t++) {
    for (let i = 0; i < half; i++) {
      const angle = pos[t]! * Math.pow(base, (-2 * i) / D);
      cos[t * half + i] = Math.cos(angle);
      sin[t * half + i] = Math.sin(angle);
    }
  }
  return { cos, sin };
}

/** out (+)= R(direction·angle)·x for each channel pair. */
function rotate(src: Float32Array, dst: Float32Array, cos: Float32Array, sin: Float32Array, B: number, T: number, H: number, D: number, direction: 1 | -1, accumulate = false): void {
  const half = D / 2;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let h = 0; h < H; h++) {
        const o = ((b * T + t) * H + h) * D;
        const a = (cos.length === T * half ? t : b * T + t) * half; // shared or per-row positions
        for (let i = 0; i < half; i++) {
          const c = cos[a + i]!;
          const s = direction * sin[a + i]!;
          const x0 = src[o + 2 * i]!;
          const x1 = src[o + 2 * i + 1]!;
          const y0 = x0 * c - x1 * s;
          const y1 = x0 * s + x1 * c;
          if (accumulate) {
            dst[o + 2 * i] = dst[o + 2 * i]! + y0;
            dst[o + 2 * i + 1] = dst[o + 2 * i + 1]! + y1;
          } else {
            dst[o + 2 * i] = y0;
            dst[o + 2 * i + 1] = y1;
          }
        }
      }
    }
  }
}
