import type { Module } from '../nn/module.js';
import type { KVLayer } from '../tensor/ops/attention.js';
import type { Tensor } from '../tensor/tensor.js';

/** What forwardCached needs from a KV cache (src/generate/kv_cache.ts). */
export interface KVCacheLike {
  layers: KVLayer[];
  length: number;
  position(row: number, slot: number): number;
  advance(n: number): void;
}

export interface CausalLMOutput {
  /** [B, T, vocab] scores for the next token at every position. */
  logits: Tensor;
  /** Mean cross-entropy against the targets, when targets were given. */
  loss: Tensor | null;
}

/**
 * What generation, evaluation and the reference check need from a decoder
 * language model, whichever family it is (the GPT, the Llama family): scores
 * for next tokens, with or without a KV cache.
 */
export interface CausalLM extends Module {
  readonly config: { n_layer: number; n_embd: number; block_size: number; vocab_size: number };
  /** ids: B·T token ids (row-major); targets, if given, the next token at each position. */
  forward(ids: Int32Array, shape: [number, number], targets?: Int32Array): CausalLMOutput;
  /** [B, vocab] scores for the token after each row's last position. */
  nextTokenLogits(ids: Int32Array, shape: [number, number]): Tensor;
  /** T new tokens per row at the cache's next slots; [B, vocab] scores for the token after each row's last. */
  forwardCached(ids: Int32Array, shape: [number, number], cache: KVCacheLike): Tensor;
}
