/**
 * SwiGLU's gated product (Shazeer 2020; Llama's MLP): out = silu(gate) ∘ up,
 * silu(g) = g·σ(g). Plain loops, the reference for native kernels.
 *
 * Backward, per element, with s = σ(g):
 *   ∂out/∂up   = silu(g) = g·s
 *   ∂out/∂gate = up · silu'(g) = up · s·(1 + g·(1 − s))
 */
export function swigluForward(gate: Float32Array, up: Float32Array, out: Float32Array): void {
  for (let i = 0; i < out.length; i++) {
    const g = gate[i]!;
    out[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
}

export function swigluBackward(gate: Float32Array, up: Float32Array, dy: Float32Array, dGate: Float32Array | null, dUp: Float32Array | null, accGate: boolean, accUp: boolean): void {
  for (let i = 0; i < dy.length; i++) {
    const g = gate[i]!;
    const s = 1 / (1 + Math.exp(-g));
    if (dGate) {
      const d = dy[i]! * up[i]! * s * (1 + g * (1 - s));
      dGate[i] = accGate ? dGate[i]! + d : d;
    }
    if (dUp) {
      const d = dy[i]! * g * s;
      dUp[i] = accUp ? dUp[i]! + d : d;
    }
  }
}
