import type { DecoderLM } from '../models/causal_lm.js';
import { noGrad } from '../tensor/autograd.js';
import { withDeviceScratch } from '../tensor/tensor.js';
import { valuesAwaited, valuesNow, type ValueReads } from '../tensor/value_reads.js';

/**
 * A text embedding from a decoder language model (GPT, Llama family): the final hidden states (after the last
 * norm, the vectors the output head reads) of every token, averaged over
 * the tokens and scaled to length 1 (L2), so that the dot product of two
 * embeddings is their cosine similarity. A decoder was not trained for this;
 * it is the usual baseline, good enough to find near-identical prompts for a
 * semantic cache. `ids` must fit the context (1 … block_size tokens).
 */
export function meanPooledEmbedding(model: DecoderLM, ids: Int32Array): Float32Array {
  return valuesNow(pooled(model, ids));
}

/** meanPooledEmbedding on any backend: on a device the pass is scratch and only the hidden states [T, C] come back. */
export function meanPooledEmbeddingAsync(model: DecoderLM, ids: Int32Array): Promise<Float32Array> {
  return valuesAwaited(pooled(model, ids));
}

function* pooled(model: DecoderLM, ids: Int32Array): ValueReads<Float32Array> {
  const T = ids.length;
  if (T === 0 || T > model.config.block_size) throw new Error(`embedding needs 1 … ${model.config.block_size} tokens, got ${T}`);
  const C = model.config.n_embd;
  const h = withDeviceScratch(() => noGrad(() => model.hidden(ids, [1, T])), (t) => [t.storage]);
  const [hidden] = yield [h];
  const out = new Float32Array(C);
  for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) out[c] = out[c]! + hidden![t * C + c]!;
  let norm = 0;
  for (let c = 0; c < C; c++) norm += out[c]! * out[c]!;
  const scale = norm > 0 ? 1 / Math.sqrt(norm) : 0;
  for (let c = 0; c < C; c++) out[c] = out[c]! * scale;
  return out;
}
