import { record } from '../autograd.js';
import { Tensor } from '../tensor.js';

export interface MaskedAttentionOptions {
  /** Query i may only look at keys j ≤ i (decoder self-attention). */
  causal?: boolean;
  /** B·Tk flags, 1 where a key is padding: no query attends to it (the podcast's padding mask). */
  keyPadding?: Uint8Array;
  /** Defaults to 1/√headDim. */
  scale?: number;
  /** Keep the attention weights [B, nHead, Tq, Tk] on the result (for --show-attention). */
  keepWeights?: boolean;
}

export interface MaskedAttentionResult {
  out: Tensor;
  /** softmax(q·kᵀ·scale) per head, [B, nHead, Tq, Tk], when keepWeights was asked. */
  weights: Float32Array | null;
}

interface Dims {
  B: number;
  Tq: number;
  Tk: number;
  H: number;
  D: number;
  C: number;
}

/**
 * Attention where queries and keys may come from different sequences
 * (cross-attention: decoder queries, encoder keys and values) and some keys
 * may be hidden (padding, or the future). q is [B, Tq, C]; k and v are
 * [B, Tk, C]; heads side by side in C. Plain loops, forward then backward, as
 * in llm.c: the models that need masks here are small, and every step is
 * visible.
 */
export function maskedAttention(q: Tensor, k: Tensor, v: Tensor, nHead: number, opts: MaskedAttentionOptions = {}): MaskedAttentionResult {
  const d = dims(q, k, v, nHead);
  if (opts.keyPadding && opts.keyPadding.length !== d.B * d.Tk) throw new Error(`key padding mask has ${opts.keyPadding.length} flags, expected ${d.B}×${d.Tk}`);
  const scale = opts.scale ?? 1 / Math.sqrt(d.D);
  const P = new Float32Array(d.B * d.H * d.Tq * d.Tk);
  const out = Tensor.zeros([d.B, d.Tq, d.C]);
  attentionForward(q.data, k.data, v.data, out.data, P, d, scale, opts);
  record(out, [q, k, v], 'maskedAttention', () => {
    attentionBackward(q, k, v, P, out.grad!, d, scale);
  });
  return { out, weights: opts.keepWeights ? P : null };
}

function dims(q: Tensor, k: Tensor, v: Tensor, H: number): Dims {
  if (q.rank !== 3 || k.rank !== 3 || k.shape.join() !== v.shape.join() || q.shape[0] !== k.shape[0] || q.shape[2] !== k.shape[2]) {
    throw new Error(`attention expects q [B, Tq, C] and k, v [B, Tk, C]; got [${q.shape}], [${k.shape}], [${v.shape}]`);
  }
  const [B, Tq, C] = q.shape as [number, number, number];
  if (C % H !== 0) throw new Error(`attention: ${C} channels do not split into ${H} heads`);
  return { B, Tq, Tk: k.shape[1]!, H, D: C / H, C };
}

function visible(b: number, i: number, j: number, d: Dims, opts: MaskedAttentionOptions): boolean {
  if (opts.causal && j > i) return false;
  return !(opts.keyPadding && opts.keyPadding[b * d.Tk + j]);
}

/** P = softmax(S) over the visible keys, S = q·kᵀ·scale; out = P·v. A query with no visible key outputs zeros. */
function attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, P: Float32Array, d: Dims, scale: number, opts: MaskedAttentionOptions): void {
  const { B, Tq, Tk, H, D, C } = d;
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Tq; i++) {
        const p = P.subarray(((b * H + h) * Tq + i) * Tk, ((b * H + h) * Tq + i + 1) * Tk);
        const qi = (b * Tq + i) * C + h * D;
        let max = -Infinity;
        for (let j = 0; j < Tk; j++) {
          if (!visible(b, i, j, d, opts)) continue;
          const kj = (b * Tk + j) * C + h * D;
          let s = 0;
          for (let c = 0; c < D; c++) s += q[qi + c]! * k[kj + c]!;
          p[j] = s * scale;
          if (p[j]! > max) max = p[j]!;
        }
        if (max === -Infinity) continue; // every key hidden: leave P and out at 0
        let total = 0;
        for (let j = 0; j < Tk; j++) {
          if (!visible(b, i, j, d, opts)) continue;
          p[j] = Math.exp(p[j]! - max); // subtracting the max keeps exp from overflowing
          total += p[j]!;
        }
        for (let j = 0; j < Tk; j++) {
          if (p[j] === 0) continue;
          p[j] = p[j]! / total;
          const vj = (b * Tk + j) * C + h * D;
          for (let c = 0; c < D; c++) out[qi + c] = out[qi + c]! + p[j]! * v[vj + c]!;
        }
      }
    }
  }
}

/**
 * With dOut: dv_j += p_j·dOut_i; dP_j = dOut_i·v_j; the softmax turns dP into
 * dS_j = p_j·(dP_j − Σ p·dP); then dq_i += scale·dS_j·k_j and dk_j += scale·dS_j·q_i.
 */
function attentionBackward(q: Tensor, k: Tensor, v: Tensor, P: Float32Array, dOut: Float32Array, d: Dims, scale: number): void {
  const { B, Tq, Tk, H, D, C } = d;
  const dq = q.requiresGrad ? q.ensureGrad() : null;
  const dk = k.requiresGrad ? k.ensureGrad() : null;
  const dv = v.requiresGrad ? v.ensureGrad() : null;
  const dP = new Float32Array(Tk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Tq; i++) {
        const p = P.subarray(((b * H + h) * Tq + i) * Tk, ((b * H + h) * Tq + i + 1) * Tk);
        const qi = (b * Tq + i) * C + h * D;
        let dot = 0;
        for (let j = 0; j < Tk; j++) {
          dP[j] = 0;
          if (p[j] === 0) continue;
          const vj = (b * Tk + j) * C + h * D;
          let s = 0;
          for (let c = 0; c < D; c++) {
            s += dOut[qi + c]! * v.data[vj + c]!;
            if (dv) dv[vj + c] = dv[vj + c]! + p[j]! * dOut[qi + c]!;
          }
          dP[j] = s;
          dot += p[j]! * s;
        }
        for (let j = 0; j < Tk; j++) {
          if (p[j] === 0) continue;
          const dS = p[j]! * (dP[j]! - dot) * scale;
          const kj = (b * Tk + j) * C + h * D;
          for (let c = 0; c < D; c++) {
            if (dq) dq[qi + c] = dq[qi + c]! + dS * k.data[kj + c]!;
            if (dk) dk[kj + c] = dk[kj + c]! + dS * q.data[qi + c]!;
          }
        }
      }
    }
  }
}
