import type { InspectableLM } from './decoder_parts.js';
import type { LayerAttend } from '../../models/causal_lm.js';
import { noGrad } from '../../tensor/autograd.js';
import { attention, attentionWeights } from '../../tensor/ops/attention.js';

/** Every layer's attention weights on one text: maps[layer] is [head, T, T] (row: query position, column: key). */
export interface AttentionMaps {
  layers: number;
  heads: number;
  T: number;
  maps: Float32Array[];
}

/**
 * The weights each head of each layer gives each position during one
 * forward pass of T positions: `forward(attend)` runs the model with each
 * layer's attention op replaced by `attend`, which keeps the weights.
 */
export function collectMaps(forward: (attend: LayerAttend) => unknown, [layers, heads, T]: [number, number, number]): AttentionMaps {
  const maps: Float32Array[] = [];
  noGrad(() => forward((layer, q, k, v, o) => {
    maps[layer] = attentionWeights(q, k, o);
    return attention(q, k, v, o);
  }));
  return { layers, heads, T, maps };
}

/** The weights each head of each layer gives each earlier position, on one window of tokens. */
export function attentionMaps(model: InspectableLM, ids: Int32Array): AttentionMaps {
  const T = ids.length;
  return collectMaps((attend) => model.forward(ids, [1, T], undefined, { attend }), [model.config.n_layer, model.config.n_head, T]);
}

/** One head's T×T matrix as rows. */
export function headMatrix(m: AttentionMaps, layer: number, head: number): number[][] {
  const T = m.T;
  const flat = m.maps[layer]!.subarray(head * T * T, (head + 1) * T * T);
  return Array.from({ length: T }, (_, i) => Array.from(flat.subarray(i * T, (i + 1) * T)));
}

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
    const a = Array.from({ length: T }, (_, i) => Array.from({ length: T }, (_, j) => {
      let s = 0;
      for (let h = 0; h < m.heads; h++) s += m.maps[l]![h * T * T + i * T + j]!;
      return 0.5 * (s / m.heads) + (i === j ? 0.5 : 0);
    }));
    rollout = a.map((row) => Array.from({ length: T }, (_, j) => row.reduce((s, v, k) => s + v * rollout[k]![j]!, 0)));
  }
  return rollout;
}
