import type { LayerAttend } from '../../models/causal_lm.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { ProbeTarget } from './layer_probes.js';

/** The three kinds of attention of an encoder–decoder, each replaceable layer by layer. */
export type AttentionKind = 'encoder' | 'self' | 'cross';
export const ATTENTION_KINDS: AttentionKind[] = ['encoder', 'self', 'cross'];
export type EncDecAttends = Partial<Record<AttentionKind, LayerAttend>>;

/**
 * Some examples of an encoder–decoder model's data (sentence pairs, or
 * images with their captions) bound to the model: everything
 * inspect_encoder_decoder.ts needs, whatever the model. A translation model
 * (seq2seq_view.ts) and a captioner (captioner_view.ts) each provide one.
 */
export interface EncDecBatch {
  /** Examples, source positions (tokens or the class token and patches), target positions. */
  B: number;
  Ts: number;
  Tt: number;
  /** Both residual streams, entry 0 the embeddings, entry i after layer i (before the final norms); attends replace attention ops. */
  streams(attends?: EncDecAttends): { encoder: Tensor[]; decoder: Tensor[] };
  /** The decoder's read-out: final norm and output projection. */
  readOut(h: Tensor): Tensor;
  /** What the decoder must predict at each target position (B·Tt); `ignoreIndex` = padding, not scored. */
  targets: Int32Array;
  ignoreIndex: number;
  /** 1 where a source / target position holds a real token (not padding): B·Ts and B·Tt. */
  srcKeep: Uint8Array;
  tgtKeep: Uint8Array;
  /** Besides position, what each side's linear probe reads from each token. */
  encoderProbe: ProbeTarget;
  decoderProbe: ProbeTarget;
  /** The first example's source and target positions, as short labels for the page. */
  srcLabels: string[];
  tgtLabels: string[];
}

export interface EncoderDecoderView {
  kind: 'seq2seq' | 'captioner';
  encoderLayers: number;
  decoderLayers: number;
  heads: number;
  headDim: number;
  /** How many examples there are to choose from. */
  count: number;
  /** Bind the examples of these indices (padded to their longest). */
  batch(indices: ArrayLike<number>): EncDecBatch;
}
