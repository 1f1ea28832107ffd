import type { Module } from '../nn/module.js';
// PROVISIONAL import path: at merge this becomes '../tensor/ops/attention.js' (see attention_adapter.ts).
import type { AttentionOptions } from '../tensor/ops/attention_adapter.js';
import type { Tensor } from '../tensor/tensor.js';

/** Replaces the attention op of layer `layer` (q, k, v after projection and rotation): how generate/ reads its KV cache. */
export type LayerAttend = (layer: number, q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions) => Tensor;

/** What a decoder's forward pass may be asked besides the tokens. */
export interface ForwardOptions {
  /** Position of each slot: T entries shared by the rows or B·T (default 0 … T−1). */
  positions?: Int32Array;
  attend?: LayerAttend;
  /** Score only each row's last position: logits [B, vocab] (sampling needs nothing else). */
  last?: boolean;
  /** Score only these slots (indices into the B·T positions): logits [rows, vocab]. Inference only. */
  rows?: Int32Array;
}

export interface LMOutput {
  /** [B, T, vocab] scores for the next token at every position ([B, vocab] with `last`, [rows, vocab] with `rows`). */
  logits: Tensor;
  /** Mean cross-entropy against the targets, when targets were given. */
  loss: Tensor | null;
}

/** The sizes generation needs from a decoder's config (a grouped-query model adds n_kv_head). */
export interface CausalLMConfig {
  vocab_size: number;
  block_size: number;
  n_layer: number;
  n_embd: number;
  n_head: number;
  n_kv_head?: number;
}

/**
 * A decoder-only language model as generation sees it (src/generate/): the
 * GPT, and any family built from the same layers. One forward pass serves
 * training, sampling and KV-cached decoding.
 */
export interface CausalLM extends Module {
  readonly config: CausalLMConfig;
  forward(ids: Int32Array, shape: [number, number], targets?: Int32Array, opts?: ForwardOptions): LMOutput;
  /** Scores [B, vocab] for the token after each row's last position. */
  nextTokenLogits(ids: Int32Array, shape: [number, number]): Tensor;
}
