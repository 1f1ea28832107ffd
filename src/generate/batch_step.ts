import type { CausalLM } from '../models/causal_lm.js';
import { LoRABank } from '../nn/lora_bank.js';
import { noGrad } from '../tensor/autograd.js';
import { withScratch } from '../tensor/buffer_pool.js';
import type { StoredIds } from '../tensor/stored_ids.js';
import { withDeviceScratch, type Tensor } from '../tensor/tensor.js';
import { raggedCachedAttention } from './cached_attention.js';
import type { KVCache } from './kv_cache.js';
import { pagedRaggedAttention } from './paged_kv/paged_attention.js';
import { PagedSequence } from './paged_kv/paged_sequence.js';

/** A sequence's keys and values: its own single-row contiguous cache, or a block table into a shared pool (paged_kv/). */
export type SequenceKV = KVCache | PagedSequence;

/**
 * One forward pass for sequences that do not share a clock (continuous
 * batching). Sequence s feeds `chunks[s]` new tokens — one while it decodes,
 * its whole prompt when it has just joined — at its own positions, through
 * its own single-row KV cache, so sequences join and leave between steps and
 * a newcomer's prefill rides along with everyone else's decode step instead
 * of stalling it. Everything that works on each position alone — embeddings,
 * LayerNorms, the projections, the MLP — runs on all the new tokens at once
 * as one [1, rows, C] batch, because there the cost is reading the weights,
 * and one product reads them once for every row (the native backend's
 * skinny products, native/src/gemv_impl.inc, up to 256 rows). Only attention,
 * whose cost is each sequence's own cache, runs sequence by sequence: the
 * model's forward is given an `attend` that does that (raggedCachedAttention).
 *
 * The caches are all contiguous KVCaches or all PagedSequences of one pool
 * (paged_kv/: their blocks are reserved before the pass, so a pool that runs
 * out throws KVPoolFullError before anything is written).
 *
 * Equivalent, sequence for sequence, to `forwardCached(model, chunks[s], [1, n], caches[s])`
 * (the model must be in eval mode: this is inference). Returns [sequences, vocab]
 * scores for the token after each sequence's last new token. `adapters[s]`,
 * if given, is the LoRA adapter of sequence s in the model's bank
 * (nn/lora_bank.ts; −1: the base alone). `scored[s]`, if given, scores the
 * last scored[s] new tokens of sequence s instead of only the last one (a
 * speculative verifier checks every drafted token): the scores are then
 * [Σ scored, vocab], sequence by sequence, in position order.
 */
export function batchForward(model: CausalLM, chunks: readonly Int32Array[], caches: readonly SequenceKV[], adapters?: ArrayLike<number>, scored?: ArrayLike<number>): Float32Array {
  // Every intermediate array of the pass is recycled at its end (only the scores are returned).
  return noGrad(() => withScratch(() => batchLogits(model, chunks, caches, adapters, scored).data));
}

/**
 * batchForward's scores as a tensor where the backend keeps them (device
 * storage on webgpu: the server then reads back only what it samples), every
 * other intermediate handed back to the pools. The caller releases the
 * scores' storage when done.
 */
export function batchForwardOnDevice(model: CausalLM, chunks: readonly Int32Array[], caches: readonly SequenceKV[], adapters?: ArrayLike<number>, scored?: ArrayLike<number>): Tensor {
  return noGrad(() => withScratch(() => withDeviceScratch(() => batchLogits(model, chunks, caches, adapters, scored), (t) => [t.storage])));
}

/**
 * batchForwardOnDevice for a pass whose tokens are still on the device, as
 * argmax picks wrote them (StoredIds), so the pass can be queued before they
 * are read: by default one token per sequence (a decode step: the
 * scheduler's greedy steps queued ahead; generate/decode_ahead.ts), or
 * `lengths[s]` tokens for sequence s, one after another in `ids`, of which
 * the last `scored[s]` are scored (a speculative verifier checking drafts
 * that are still on the device; generate/speculative_device.ts). `adapters`
 * as batchForward's.
 */
export function batchDecodeStored(model: CausalLM, ids: StoredIds, caches: readonly SequenceKV[], opts: { lengths?: readonly number[]; scored?: ArrayLike<number>; adapters?: ArrayLike<number> } = {}): Tensor {
  const input = { ids, lengths: opts.lengths ?? new Array<number>(caches.length).fill(1) };
  if (input.lengths.reduce((a, b) => a + b, 0) !== ids.length) throw new Error(`batchDecodeStored: ${ids.length} stored ids for ${input.lengths.join(' + ')} tokens`);
  return noGrad(() => withScratch(() => withDeviceScratch(() => batchLogits(model, input, caches, opts.adapters, opts.scored), (t) => [t.storage])));
}

/** Token ids kept by the backend, `lengths[s]` of them for sequence s, one sequence after another. */
interface StoredChunks {
  ids: StoredIds;
  lengths: readonly number[];
}

/**
 * The pass itself, shared by all three (no graph is recorded: callers run it
 * under noGrad). `input` is each sequence's new tokens, on the host or kept
 * by the backend.
 */
function batchLogits(model: CausalLM, input: readonly Int32Array[] | StoredChunks, caches: readonly SequenceKV[], adapters?: ArrayLike<number>, scored?: ArrayLike<number>): Tensor {
  const stored = Array.isArray(input) ? null : (input as StoredChunks);
  const lengths = stored ? [...stored.lengths] : (input as readonly Int32Array[]).map((chunk) => chunk.length);
  const S = lengths.length;
  if (caches.length !== S) throw new Error(`batchForward: ${S} sequences but ${caches.length} caches`);
  const paged = caches.filter((c): c is PagedSequence => c instanceof PagedSequence);
  if (paged.length !== 0 && paged.length !== S) throw new Error('batchForward: caches must be all contiguous or all paged');
  lengths.forEach((n, s) => {
    const c = caches[s]!;
    if (!(c instanceof PagedSequence) && c.batch !== 1) throw new Error('batchForward: every sequence needs its own single-row KV cache');
    const free = c instanceof PagedSequence ? c.room : c.free;
    if (n === 0 || free < n) throw new Error(`batchForward: sequence ${s} feeds ${n} tokens into a cache with ${free} free slots`);
  });
  if (adapters && adapters.length !== S) throw new Error(`batchForward: ${S} sequences but ${adapters.length} adapter ids`);
  if (scored && (scored.length !== S || lengths.some((n, s) => !(scored[s]! >= 1 && scored[s]! <= n)))) throw new Error('batchForward: scored needs 1 … chunk length positions per sequence');
  const offsets = rowOffsets(lengths);
  const rows = offsets[S]!;
  paged.forEach((seq, s) => seq.reserve(lengths[s]!));
  const positions = new Int32Array(rows);
  lengths.forEach((n, s) => {
    for (let t = 0; t < n; t++) positions[offsets[s]! + t] = caches[s]!.position(0, caches[s]!.length + t);
  });
  const ids = stored ? stored.ids : new Int32Array(rows);
  if (!stored) (input as readonly Int32Array[]).forEach((chunk, s) => (ids as Int32Array).set(chunk, offsets[s]));
  // Only each sequence's last new token is scored (its last scored[s], if given).
  const last = scored ? lastRows(offsets, scored) : Int32Array.from({ length: S }, (_, s) => offsets[s + 1]! - 1);
  const forward = () => model.forward(ids, [1, rows], undefined, {
    positions,
    rows: last,
    attend: paged.length > 0
      ? (layer, q, k, v, o) => pagedRaggedAttention(q, k, v, offsets, paged, layer, o)
      : (layer, q, k, v, o) => raggedCachedAttention(q, k, v, offsets, (caches as readonly KVCache[]).map((c) => c.layers[layer]!), o),
  });
  // Sequences that name a LoRA adapter (serving many over one base): each of their rows gets its own.
  const bank = adapters ? LoRABank.find(model) : null;
  if (adapters && !bank) throw new Error('batchForward: adapter ids given for a model with no adapters');
  const { logits } = bank ? bank.run(rowAdapters(adapters!, offsets), forward) : forward();
  lengths.forEach((n, s) => caches[s]!.advance(n));
  return logits;
}

/** One decoding step: one new token per sequence. */
export function batchStep(model: CausalLM, ids: Int32Array, caches: readonly SequenceKV[]): Float32Array {
  return batchForward(model, Array.from(ids, (id) => Int32Array.of(id)), caches);
}

/** The adapter of every row: each sequence's, repeated over its new tokens. */
function rowAdapters(adapters: ArrayLike<number>, offsets: Int32Array): Int32Array {
  const out = new Int32Array(offsets[offsets.length - 1]!);
  for (let s = 0; s + 1 < offsets.length; s++) out.fill(adapters[s]!, offsets[s], offsets[s + 1]);
  return out;
}

/** The last scored[s] rows of every sequence s, in order. */
function lastRows(offsets: Int32Array, scored: ArrayLike<number>): Int32Array {
  const rows: number[] = [];
  for (let s = 0; s < scored.length; s++) for (let r = offsets[s + 1]! - scored[s]!; r < offsets[s + 1]!; r++) rows.push(r);
  return Int32Array.from(rows);
}

/** offsets[s] = the first row of sequence s; offsets[S] = all rows. */
function rowOffsets(lengths: readonly number[]): Int32Array {
  const offsets = new Int32Array(lengths.length + 1);
  lengths.forEach((n, s) => (offsets[s + 1] = offsets[s]! + n));
  return offsets;
}
