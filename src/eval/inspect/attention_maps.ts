import type { InspectableLM } from './decoder_parts.js';
import type { LayerAttend } from '../../models/causal_lm.js';
import { noGrad } from '../../tensor/autograd.js';
import { attention, attentionWeights } from '../../tensor/ops/attention.js';

/** Every layer's attention weights on one text: maps[layer] is [head, T, keys] (row: query position, column: key). */
export interface AttentionMaps {
  layers: number;
  heads: number;
  T: number;
  /** Key positions when they differ from the queries (cross-attention: the source); T when absent. */
  keys?: number;
  maps: Float32Array[];
}

/**
 * The weights each head of each layer gives each position during one
 * forward pass of T positions: `forward(attend)` runs the model with each
 * layer's attention op replaced by `attend`, which keeps the weights.
 */
export function collectMaps(forward: (attend: LayerAttend) => unknown, [layers, heads, T]: [number, number, number], keys = T): AttentionMaps {
  const maps: Float32Array[] = [];
  noGrad(() => forward((layer, q, k, v, o) => {
    maps[layer] = attentionWeights(q, k, o);
    return attention(q, k, v, o);
  }));
  return { layers, heads, T, ...(keys !== T ? { keys } : {}), maps };
}

/** The weights each head of each layer gives each earlier position, on one window of tokens. */
export function attentionMaps(model: InspectableLM, ids: Int32Array): AttentionMaps {
  const T = ids.length;
  return collectMaps((attend) => model.forward(ids, [1, T], undefined, { attend }), [model.config.n_layer, model.config.n_head, T]);
}

/** One head's T×keys matrix as rows. */
export function headMatrix(m: AttentionMaps, layer: number, head: number): number[][] {
  const T = m.T;
  const K = m.keys ?? T;
  const flat = m.maps[layer]!.subarray(head * T * K, (head + 1) * T * K);
  return Array.from({ length: T }, (_, i) => Array.from(flat.subarray(i * K, (i + 1) * K)));
}

/** Layer l's weights averaged over the heads, as T×keys rows. */
export function meanHeads(m: AttentionMaps, l: number): number[][] {
  const T = m.T;
  const K = m.keys ?? T;
  return Array.from({ length: T }, (_, i) => Array.from({ length: K }, (_, j) => {
    let s = 0;
    for (let h = 0; h < m.heads; h++) s += m.maps[l]![(h * T + i) * K + j]!;
    return s / m.heads;
  }));
}

/** The matrix product a·b of row arrays. */
export const matmulRows = (a: number[][], b: number[][]): number[][] =>
  a.map((row) => Array.from({ length: b[0]?.length ?? 0 }, (_, j) => row.reduce((s, v, k) => s + v * b[k]![j]!, 0)));

/**
 * Attention rollout (Abnar & Zuidema, 2020): how much each output position
 * draws, through all layers, on each input token. Each layer's heads are
 * averaged and the residual connection counted as attending to oneself
 * (½·A + ½·I, rows summing to 1); the layers' matrices are multiplied, last
 * on the left.
 */
export function attentionRollout(m: AttentionMaps): number[][] {
  const T = m.T;
  let rollout: number[][] = Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => (i === j ? 1 : 0)));
  for (let l = 0; l < m.layers; l++) {
    const a = meanHeads(m, l).map((row, i) => row.map((v, j) => 0.5 * v + (i === j ? 0.5 : 0)));
    rollout = matmulRows(a, rollout);
  }
  return rollout;
}
