import type { AttentionDims, AttentionSaved } from '../backend.js';
import { bf16Round } from './bf16.js';
import { dropBits, dropThreshold } from './dropout.js';

/*
 * Scaled dot-product attention as plain loops, the reference every faster
 * kernel is tested against. Names follow the article:
 *
 *   scores  s[i][j] = q_i · k_j · scale          (scale = 1/√d by default)
 *   weights p[i][j] = softmax over the keys j that query i may see
 *   output  o_i     = Σ_j p[i][j] · v_j
 *
 * Indices: b batch row, h query head, g its key/value head, i query
 * position, j key position, e one of the headDim channels of a head. Heads sit
 * side by side in each row, so head h of query i of row b starts at
 * (b·Tq + i)·qStride + h·headDim; keys and values likewise with kvStride.
 * Several query heads may share one key/value head (grouped-query attention):
 * they read it in place, nothing is copied per query head.
 *
 * With d.bf16 (mixed precision), every product's two operands are rounded to
 * bfloat16 first (op(x) below), as the native kernel's pair products do; the
 * softmax, its sums and ds stay full precision.
 */

/** An operand of a product: rounded to bfloat16 under d.bf16 (a float32 first, as the kernels hold it). */
const operand = (d: AttentionDims) => (d.bf16 ? (x: number) => bf16Round(Math.fround(x)) : (x: number) => x);

/** The key/value head query head h reads: heads come in nHead/nKvHead groups. */
export function kvHeadOf(d: AttentionDims, h: number): number {
  return Math.floor(h / (d.nHead / d.nKvHead));
}

/** Whether query i of row b may look at key j: causal (nothing later than itself) and not padding. */
export function canSee(d: AttentionDims, b: number, i: number, j: number): boolean {
  if (d.causal && j > i + (d.Tk - d.Tq)) return false;
  return !(d.keyPadding && d.keyPadding[b * d.Tk + j]);
}

/**
 * The dropout factor of weight (b, h, i, j): 0 with probability p, else 1/(1−p),
 * drawn from the counter-based hash at the weight's index, so the backward
 * pass (and the native kernel) recompute the same mask without storing it.
 */
export function dropFactor(d: AttentionDims, b: number, h: number, i: number, j: number): number {
  if (!d.dropout || d.dropout.p === 0) return 1;
  const index = ((b * d.nHead + h) * d.Tq + i) * d.Tk + j;
  return dropBits(d.dropout.seed, index) < dropThreshold(d.dropout.p) ? 0 : Math.fround(1 / (1 - d.dropout.p));
}

/**
 * The attention weights [B, nHead, Tq, Tk] (after the masks, before dropout):
 * p[i][j] = softmax_j(q_i·k_j·scale) over the keys query i sees, 0 for the
 * others; a query that sees no key gets a row of zeros.
 */
export function attentionWeights(q: Float32Array, k: Float32Array, d: AttentionDims): Float32Array {
  const { B, Tq, Tk, nHead, headDim: D, scale } = d;
  const qs = d.qStride ?? nHead * D;
  const ks = d.kvStride ?? d.nKvHead * D;
  const p = new Float32Array(B * nHead * Tq * Tk);
  const s = new Float64Array(Tk);
  const op = operand(d);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHead; h++) {
      const g = kvHeadOf(d, h);
      for (let i = 0; i < Tq; i++) {
        // scores, and their maximum (subtracted before exp so that it cannot overflow)
        let max = -Infinity;
        for (let j = 0; j < Tk; j++) {
          if (!canSee(d, b, i, j)) continue;
          let dot = 0;
          for (let e = 0; e < D; e++) dot += op(q[(b * Tq + i) * qs + h * D + e]!) * op(k[(b * Tk + j) * ks + g * D + e]!);
          s[j] = dot * scale;
          if (s[j]! > max) max = s[j]!;
        }
        if (max === -Infinity) continue; // sees nothing: the row stays 0
        let sum = 0;
        for (let j = 0; j < Tk; j++) if (canSee(d, b, i, j)) sum += s[j] = Math.exp(s[j]! - max);
        const row = ((b * nHead + h) * Tq + i) * Tk;
        for (let j = 0; j < Tk; j++) p[row + j] = canSee(d, b, i, j) ? s[j]! / sum : 0;
      }
    }
  }
  return p;
}

/** o_i = Σ_j dropout(p[i][j])·v_j for every head; keeps p for the backward pass. */
export function attentionForward(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, d: AttentionDims): AttentionSaved {
  const { B, Tq, Tk, nHead, headDim: D } = d;
  const C = nHead * D;
  const ks = d.kvStride ?? d.nKvHead * D;
  const p = attentionWeights(q, k, d);
  const op = operand(d);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHead; h++) {
      const g = kvHeadOf(d, h);
      for (let i = 0; i < Tq; i++) {
        const row = ((b * nHead + h) * Tq + i) * Tk;
        const o = new Float64Array(D);
        for (let j = 0; j < Tk; j++) {
          const w = op(p[row + j]! * dropFactor(d, b, h, i, j));
          for (let e = 0; e < D; e++) o[e] += w * op(v[(b * Tk + j) * ks + g * D + e]!);
        }
        out.set(o, (b * Tq + i) * C + h * D);
      }
    }
  }
  return p;
}

/**
 * The same loops backwards. With dp[j] = dO_i·v_j (through the dropout mask):
 *   dv_j += dropout(p[i][j])·dO_i
 *   ds[j] = p[i][j]·(dp[j] − Σ_j' p[i][j']·dp[j'])     (softmax backward)
 *   dq_i += scale·Σ_j ds[j]·k_j,   dk_j += scale·ds[j]·q_i
 * dq, dk, dv are added into (accumulate) or overwritten.
 */
export function attentionBackward(
  saved: AttentionSaved, q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, dOut: Float32Array,
  dq: Float32Array, dk: Float32Array, dv: Float32Array, d: AttentionDims, accumulate: boolean,
): void {
  const { B, Tq, Tk, nHead, nKvHead, headDim: D, scale } = d;
  const C = nHead * D;
  const qs = d.qStride ?? C;
  const ks = d.kvStride ?? nKvHead * D;
  const p = saved as Float32Array;
  if (!accumulate) {
    // Only this op's columns of each row: with strides, q, k and v share rows with other data.
    for (let r = 0; r < B * Tq; r++) dq.fill(0, r * qs, r * qs + C);
    for (let r = 0; r < B * Tk; r++) {
      dk.fill(0, r * ks, r * ks + nKvHead * D);
      dv.fill(0, r * ks, r * ks + nKvHead * D);
    }
  }
  const dp = new Float64Array(Tk);
  const op = operand(d);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHead; h++) {
      const g = kvHeadOf(d, h);
      for (let i = 0; i < Tq; i++) {
        const row = ((b * nHead + h) * Tq + i) * Tk;
        const qi = (b * Tq + i) * qs + h * D;
        const dOi = (b * Tq + i) * C + h * D;
        // Σ_j p[i][j]·dp[j]. Under bf16 it is dO_i·o_i instead, as the native kernel computes it:
        // the two are equal in exact arithmetic, not once the products round their operands.
        let sum = 0;
        if (d.bf16) for (let e = 0; e < D; e++) sum += dOut[dOi + e]! * out[dOi + e]!;
        for (let j = 0; j < Tk; j++) {
          const kj = (b * Tk + j) * ks + g * D;
          const m = dropFactor(d, b, h, i, j);
          let dot = 0;
          for (let e = 0; e < D; e++) dot += op(dOut[dOi + e]!) * op(v[kj + e]!);
          dp[j] = dot * m;
          if (!d.bf16) sum += p[row + j]! * dp[j]!;
          const kept = op(p[row + j]! * m);
          for (let e = 0; e < D; e++) dv[kj + e] += kept * op(dOut[dOi + e]!);
        }
        for (let j = 0; j < Tk; j++) {
          const ds = op(p[row + j]! * (dp[j]! - sum));
          if (ds === 0) continue;
          const kj = (b * Tk + j) * ks + g * D;
          for (let e = 0; e < D; e++) {
            dq[qi + e] += scale * ds * op(k[kj + e]!);
            dk[kj + e] += scale * ds * op(q[qi + e]!);
          }
        }
      }
    }
  }
}
