import { GPT } from '../../models/gpt.js';
import type { Llama } from '../../models/llama.js';
import type { AttentionCall } from '../../nn/attention.js';
import type { Tensor } from '../../tensor/tensor.js';

/** The decoder language models `attn inspect` looks inside: the GPT and the Llama family (Llama, Qwen2, Mistral). */
export type InspectableLM = GPT | Llama;

/**
 * A decoder's parts as the inspection tools read them, whichever family:
 * the embedding that starts the residual stream, the blocks that add to it,
 * and the read-out (final norm, then head) that turns it into scores. Both
 * families' blocks take the same call (positions for RoPE, an `attend`).
 */
export interface DecoderParts {
  layers: number;
  heads: number;
  /** Width of one head's output (its slice of the attention result). */
  headDim: number;
  vocab: number;
  blockSize: number;
  /** Token vectors, plus learned position vectors where the model has them. */
  embed(ids: Int32Array, shape: [number, number], positions: Int32Array): Tensor;
  blocks: Array<{ forward(x: Tensor, call: AttentionCall): Tensor }>;
  /** The final norm and the output head: scores over the vocabulary. */
  readOut(h: Tensor): Tensor;
}

export function decoderParts(model: InspectableLM): DecoderParts {
  const c = model.config;
  if (model instanceof GPT) {
    return {
      layers: c.n_layer, heads: c.n_head, headDim: c.n_embd / c.n_head, vocab: c.vocab_size, blockSize: c.block_size,
      embed: (ids, shape, positions) => model.embed(ids, shape, positions),
      blocks: model.h,
      readOut: (h) => model.lm_head.forward(model.ln_f.forward(h)),
    };
  }
  const m = model.model;
  return {
    layers: c.n_layer, heads: c.n_head, headDim: model.config.head_dim, vocab: c.vocab_size, blockSize: c.block_size,
    // No position vectors: RoPE turns queries and keys inside each layer.
    embed: (ids, shape) => m.embed_tokens.forward(ids, shape),
    blocks: m.layers,
    readOut: (h) => model.lm_head.forward(m.norm.forward(h)),
  };
}
