import { decoderParts, type InspectableLM } from './decoder_parts.js';
import { noGrad } from '../../tensor/autograd.js';
import type { Tensor } from '../../tensor/tensor.js';

/**
 * A decoder's residual stream, layer by layer: the embeddings (entry 0), then
 * the vector after each block (entry i after block i). The same steps as
 * the model's `hidden`, stopped at every block so the tools of this folder
 * can read what each layer holds. Evaluation mode, no graph.
 */
export function residualStream(model: InspectableLM, ids: Int32Array, [B, T]: [number, number]): Tensor[] {
  const parts = decoderParts(model);
  return noGrad(() => {
    const positions = Int32Array.from({ length: T }, (_, i) => i);
    let x = parts.embed(ids, [B, T], positions);
    const out = [x];
    for (const block of parts.blocks) {
      x = block.forward(x, { positions });
      out.push(x);
    }
    return out;
  });
}

/**
 * `count` windows of `length` + 1 tokens from `ids`, at starts drawn by a
 * seeded generator, as inputs and next-token targets: the same seed always
 * gives the same windows, so a table computed on them reproduces.
 */
export function sampleWindows(ids: Int32Array, length: number, count: number, rng: { int(n: number): number }): { x: Int32Array; y: Int32Array; B: number; T: number } {
  const T = Math.min(length, ids.length - 1);
  if (T < 2) throw new Error(`need at least 3 tokens of text to inspect a model, got ${ids.length}`);
  const x = new Int32Array(count * T);
  const y = new Int32Array(count * T);
  for (let b = 0; b < count; b++) {
    const start = rng.int(ids.length - T);
    x.set(ids.subarray(start, start + T), b * T);
    y.set(ids.subarray(start + 1, start + T + 1), b * T);
  }
  return { x, y, B: count, T };
}
