import { matmulRows, meanHeads, type AttentionMaps } from './attention_maps.js';

/**
 * Attention rollout carried through cross-attention: how much each target
 * position of an encoder–decoder draws, in the end, on each source token.
 *
 * The decoder's stream at each target position is tracked as two shares
 * that together sum to 1: D (target × target: drawn on the target tokens)
 * and S (target × source: drawn on the source). They start as D = I, S = 0.
 * Each sublayer counts its residual path as half, as in Abnar & Zuidema's
 * rollout:
 *   causal self-attention A (heads averaged):  D ← ½·A·D + ½·D,  S ← ½·A·S + ½·S
 *   cross-attention C (target × source):       D ← ½·D,          S ← ½·S + ½·C·E
 * where E is the encoder's own rollout (source × source), so what the
 * decoder reads from the encoder's output is traced back to the source
 * tokens. The result is S: rows are target positions, columns source tokens.
 */
export function crossRollout(self: AttentionMaps, cross: AttentionMaps, encoderRollout: number[][]): number[][] {
  const T = self.T;
  let D: number[][] = Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => (i === j ? 1 : 0)));
  let S: number[][] = Array.from({ length: T }, () => new Array<number>(encoderRollout.length).fill(0));
  const half = (m: number[][]): number[][] => m.map((r) => r.map((v) => v / 2));
  const plus = (a: number[][], b: number[][]): number[][] => a.map((r, i) => r.map((v, j) => v + b[i]![j]!));
  for (let l = 0; l < self.layers; l++) {
    const A = half(meanHeads(self, l));
    D = plus(matmulRows(A, D), half(D));
    S = plus(matmulRows(A, S), half(S));
    D = half(D);
    S = plus(half(S), half(matmulRows(meanHeads(cross, l), encoderRollout)));
  }
  return S;
}
