import { noGrad } from '../../tensor/autograd.js';
import { crossEntropy } from '../../tensor/ops/cross_entropy.js';
import type { Tensor } from '../../tensor/tensor.js';
import { decoderParts, type InspectableLM } from './decoder_parts.js';
import { residualStream } from './residual_stream.js';

export interface LensLayer {
  /** "embeddings", "block 1", …: where in the stream this reading was taken. */
  name: string;
  /** Cross-entropy of the next token when the model stops here. */
  loss: number;
  /** How often the top-scored token is the right one. */
  accuracy: number;
  /** The top-scored next token at each position of the first window. */
  top: number[];
}

/** The top-scored class of each row of [rows, V] scores. */
export const argmaxRows = (logits: Tensor, V: number): number[] =>
  Array.from({ length: logits.size / V }, (_, r) => {
    let best = 0;
    for (let v = 1; v < V; v++) if (logits.data[r * V + v]! > logits.data[r * V + best]!) best = v;
    return best;
  });

/**
 * The logit lens: read the residual stream after each layer through the
 * final norm (LayerNorm, or RMSNorm in the Llama family) and the output head, as if the model ended there. Where
 * the loss stops falling, the later layers add little to the prediction.
 */
export function logitLens(model: InspectableLM, x: Int32Array, y: Int32Array, [B, T]: [number, number]): LensLayer[] {
  const parts = decoderParts(model);
  const V = parts.vocab;
  return residualStream(model, x, [B, T]).map((h, i) => noGrad(() => {
    const logits = parts.readOut(h);
    const top = argmaxRows(logits, V);
    return {
      name: i === 0 ? 'embeddings' : `block ${i}`,
      loss: crossEntropy(logits, y).item(),
      accuracy: top.filter((t, r) => t === y[r]).length / top.length,
      top: top.slice(0, T),
    };
  }));
}
