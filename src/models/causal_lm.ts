import { QuantizedEmbedding } from '../nn/block_quantized.js';
import { Embedding } from '../nn/embedding.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { TiedLinear } from '../nn/tied_linear.js';
import { chunkedCrossEntropy, DEFAULT_HEAD_CHUNK_ROWS } from '../tensor/chunked_cross_entropy.js';
import { crossEntropy } from '../tensor/ops/cross_entropy.js';
import type { AttentionOptions } from '../tensor/ops/attention.js';
import { reshape, slice } from '../tensor/ops/shape.js';
import { recomputed } from '../tensor/recompute.js';
import { withScratchStage } from '../tensor/buffer_pool.js';
import { isHost } from '../backend/storage.js';
import { isGradEnabled } from '../tensor/autograd.js';
import type { TokenIds } from '../tensor/stored_ids.js';
import { Tensor, copyStorage } from '../tensor/tensor.js';
import type { Rng } from '../util/rng.js';

/** Replaces the attention op of layer `layer` (q, k, v after projection and rotation): how generate/ reads its KV cache. */
export type LayerAttend = (layer: number, q: Tensor, k: Tensor, v: Tensor, o: AttentionOptions) => Tensor;

export interface ForwardOptions {
  /** Position of each slot: T entries shared by the rows or B·T (default 0 … T−1). */
  positions?: Int32Array;
  attend?: LayerAttend;
  /** Score only each row's last position: logits [B, vocab] (sampling needs nothing else). */
  last?: boolean;
  /** Score only these slots (indices into the B·T positions): logits [rows, vocab]. Inference only. */
  rows?: Int32Array;
  /**
   * Return real logits beside the loss even when `recompute` would score the
   * targets chunk by chunk without them (a loss that reads the logits too:
   * distillation's).
   */
  keepLogits?: boolean;
}

export interface CausalLMOutput {
  /** [B, T, vocab] scores for the next token at every position ([B, vocab] with `last`, [rows, vocab] with `rows`). */
  logits: Tensor;
  /** Mean cross-entropy against the targets, when targets were given. */
  loss: Tensor | null;
}

/** The sizes generation needs: the KV cache's shape and the vocabulary. */
export interface CausalLMConfig {
  n_layer: number;
  n_embd: number;
  n_head: number;
  /** Key/value heads (grouped-query attention); default n_head. */
  n_kv_head?: number;
  /** Width of one head; default n_embd / n_head. */
  head_dim?: number;
  block_size: number;
  vocab_size: number;
}

/**
 * What generation, evaluation, serving and the reference check need from a
 * decoder language model, whichever family it is (the GPT, the Llama
 * family): one forward pass, which KV-cached decoding drives through
 * `attend` (src/generate/cached_forward.ts).
 */
export interface CausalLM extends Module {
  readonly config: CausalLMConfig;
  readonly rng: Rng;
  /**
   * ids: B·T token ids (row-major), on the host or, for inference where
   * readsStoredIds() says so, kept by the backend; targets, if given, the next
   * token at each position.
   */
  forward(ids: TokenIds, shape: [number, number], targets?: Int32Array, opts?: ForwardOptions): CausalLMOutput;
  /** Whether forward takes ids kept by the backend (StoredIds: a device's argmax picks): its token table is one that can look them up there. */
  readsStoredIds?(): boolean;
  /** [B, vocab] scores for the token after each row's last position. */
  nextTokenLogits(ids: Int32Array, shape: [number, number]): Tensor;
  /** Recompute each block in the backward pass instead of storing its activations (DecoderLM). */
  recompute?: boolean;
}

/**
 * The hidden states [B, T, C] cut to the positions that will be scored:
 * all of them, each row's last ([B, C]) or the chosen `rows` ([rows, C]).
 * The final norm and the head work on each position alone, so they run only there.
 */
export function scoredPositions(x: Tensor, [B, T]: [number, number], opts: ForwardOptions): Tensor {
  const C = x.shape[2]!;
  if (opts.rows) return selectRows(x, opts.rows);
  if (opts.last && T > 1 && !isHost(x.storage) && !isGradEnabled()) {
    // Device inference (a prefill): each row's last vector copied on the device; slice works on host arrays.
    return selectRows(x, Int32Array.from({ length: B }, (_, b) => b * T + T - 1));
  }
  if (opts.last) return reshape(T === 1 ? x : slice(x, 1, T - 1, T), [B, C]);
  return x;
}

/** [B, T, C] → [rows, C]: the vectors at the given flat positions (a copy; records no gradient). */
function selectRows(x: Tensor, rows: Int32Array): Tensor {
  const C = x.shape[2]!;
  const n = x.size / C;
  if (rows.length === n && rows.every((r, i) => r === i)) return reshape(x, [n, C]); // every slot, in order
  const out = Tensor.zeros([rows.length, C]);
  rows.forEach((r, i) => {
    if (!(r >= 0 && r < n)) throw new Error(`row ${r} is outside the ${n} positions`);
    copyStorage(x.storage, r * C, out.storage, i * C, C);
  });
  return out;
}

/**
 * The position of every slot, checked: given ones (T shared by the rows, or
 * B·T; several sequences side by side in continuous batching) must each fit
 * the context; default 0 … T−1.
 */
export function slotPositions(ids: TokenIds, [B, T]: [number, number], opts: ForwardOptions, blockSize: number): Int32Array {
  if (ids.length !== B * T) throw new Error(`expected ${B}×${T} ids, got ${ids.length}`);
  if (!opts.positions && T > blockSize) throw new Error(`sequence of ${T} tokens exceeds block_size ${blockSize}`);
  const positions = opts.positions ?? Int32Array.from({ length: T }, (_, i) => i);
  if (positions.length !== T && positions.length !== B * T) throw new Error(`${positions.length} positions for ${B}×${T} tokens`);
  if (opts.positions && positions.some((p) => p < 0 || p >= blockSize)) throw new Error(`a position is outside the context of ${blockSize}`);
  return positions;
}

/**
 * The `logits` of a forward pass whose loss was scored chunk by chunk: the
 * shape they would have, and an error naming the way out wherever their
 * values (or their size) are asked for, instead of numbers that were never computed.
 */
function unmaterializedLogits(shape: number[]): Tensor {
  const fail = (): never => {
    throw new Error(
      `logits [${shape}] were not computed: with recompute on, the loss scores the targets chunk by chunk without them ` +
        '(set headChunkRows = 0 on the model, or pass { keepLogits: true } to forward, to get them)',
    );
  };
  const t = Object.create(Tensor.prototype) as Tensor;
  Object.defineProperty(t, 'shape', { value: shape });
  Object.defineProperty(t, 'requiresGrad', { value: false });
  Object.defineProperty(t, 'gradFn', { value: null });
  for (const key of ['storage', 'gradStorage']) Object.defineProperty(t, key, { get: fail });
  return t;
}

/**
 * What every decoder family shares around its own `hidden` pass: the head
 * over the final hidden states, the loss, and the last position's scores.
 * A family (models/gpt.ts, models/llama.ts) supplies its parts and `hidden`.
 */
export abstract class DecoderLM extends Module implements CausalLM {
  abstract readonly config: CausalLMConfig;
  abstract readonly rng: Rng;
  /** The output head: scores over the vocabulary from final hidden states. */
  abstract lm_head: { forward(x: Tensor): Tensor };
  /**
   * Activation recomputation while training (tensor/recompute.ts): keep only
   * each block's input in the forward pass and run the block again in the
   * backward pass — the same gradients in a fraction of the memory.
   */
  recompute = false;
  /**
   * With `recompute` and targets, the head and the loss run together
   * `headChunkRows` rows at a time (tensor/chunked_cross_entropy.ts): the
   * [B·T, vocab] logits and their gradient are never held, and the returned
   * `logits` is a placeholder that throws when read. 0 keeps the plain head.
   */
  headChunkRows = DEFAULT_HEAD_CHUNK_ROWS;

  /** The final hidden states (after the last norm: what the head reads) of the positions `opts` selects. */
  abstract hidden(ids: TokenIds, shape: [number, number], opts?: ForwardOptions): Tensor;

  /** The token table the first layer looks ids up in. */
  protected abstract tokenTable(): Module;

  /** Whether forward takes ids kept by the backend: a float or block-quantized (GGUF) token table looks them up where they are. */
  readsStoredIds(): boolean {
    const table = this.tokenTable();
    return table instanceof Embedding || table instanceof QuantizedEmbedding;
  }

  /** ids: B·T token ids (row-major); targets, if given, the next token at each position. */
  forward(ids: TokenIds, [B, T]: [number, number], targets?: Int32Array, opts: ForwardOptions = {}): CausalLMOutput {
    const h = this.hidden(ids, [B, T], opts);
    const head = this.lm_head;
    // Recomputing the blocks leaves the logits the largest thing alive: score the targets chunk by chunk instead (host backends).
    if (targets && this.recompute && this.headChunkRows > 0 && !opts.keepLogits && isHost(h.storage) && (head instanceof TiedLinear || head instanceof Linear)) {
      const loss = chunkedCrossEntropy(h, head.weight, head instanceof Linear ? head.bias : null, targets, { chunkRows: this.headChunkRows });
      return { logits: unmaterializedLogits([...h.shape.slice(0, -1), this.config.vocab_size]), loss };
    }
    const logits = head.forward(h);
    const loss = targets ? crossEntropy(logits, targets) : null;
    return { logits, loss };
  }

  /**
   * x through one block, `block(x)`: stored, or recomputed in the backward
   * pass (same dropout draws: `rng`). In a recycling inference pass
   * (withScratch) the block's intermediates go back to the pool as soon as
   * it returns, for the next block.
   */
  protected throughBlock(x: Tensor, block: (h: Tensor) => Tensor): Tensor {
    return this.recompute ? recomputed(block, x, [this.rng]) : withScratchStage(() => block(x), (y) => y.storage);
  }

  /** Scores [B, vocab] for the token after each row's last position. */
  nextTokenLogits(ids: Int32Array, [B, T]: [number, number]): Tensor {
    return this.forward(ids, [B, T], undefined, { last: true }).logits;
  }
}
