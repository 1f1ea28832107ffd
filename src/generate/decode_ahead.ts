import { backend } from '../backend/index.js';
import type { Storage } from '../backend/storage.js';
import type { CausalLM } from '../models/causal_lm.js';
import { StoredIds } from '../tensor/stored_ids.js';
import { allocStorage, readStorage, releaseStorage, type Tensor } from '../tensor/tensor.js';
import { envCount } from '../util/env.js';
import { logitsCached } from './cached_forward.js';
import type { KVCache } from './kv_cache.js';

/**
 * Greedy decoding on a device, queued ahead of its reads.
 *
 * A greedy step picks each row's token with an argmax where the scores are
 * (backend.argmaxRows) and reads back one number per row. Waiting for that
 * read before recording the next step leaves the GPU idle while the host
 * waits for the read and then records the next step. A read through Dawn in
 * Node takes milliseconds to come back, more than a small model's whole step
 * on a GPU. So the next steps are queued first: each looks up the last
 * step's picks in the embedding table where they are (StoredIds), and the
 * host reads a step's tokens while the GPU already runs the next ones.
 *
 * The tokens are the same as step by step: the same kernels on the same
 * inputs, only queued sooner. What a queued step can cost is its own work
 * when it turns out not to be needed: a row stopped by a stop token or a stop
 * string at most `depth` tokens back. BatchDecoder (engine.ts) queues only
 * steps that some row can still use, and never one that would make the KV
 * cache slide its window, since sliding needs the tokens on the host.
 */

/**
 * How many steps may be queued beyond the one being read (ATTN_DECODE_AHEAD;
 * 0 turns queuing off). The host waits only while the steps it has queued
 * take less time to record than a read takes to come back. On the H200 a
 * sync added about 10 ms (docs/webgpu.md), and a 124M step took 5.9 ms to
 * record, before later passes cut its dispatches from 162 to 65: a few steps
 * must be queued to cover a read, so the default is 4. `attn bench --backend
 * webgpu` decodes at 1, 2, 4 and 8 to settle it.
 */
let depth: number | null = null;

/** How many steps greedy decoding on a device queues beyond the one being read (default 4; read from ATTN_DECODE_AHEAD when first asked). */
export function decodeAhead(): number {
  return (depth ??= envCount('ATTN_DECODE_AHEAD', 4, 'steps'));
}

/** Set decodeAhead() (0 turns queuing off: each step waits for the last one's read); returns the previous setting. */
export function setDecodeAhead(steps: number): number {
  if (!(Number.isInteger(steps) && steps >= 0)) throw new Error(`decode ahead: ${steps} is not a count of steps`);
  const was = decodeAhead();
  depth = steps;
  return was;
}

/** A step's picks: each row's token id as a float where the backend keeps values, and the read that brings them to the host (begun, not awaited). */
export interface QueuedPicks {
  readonly ids: Storage;
  readonly rows: number;
  readonly read: Promise<Int32Array>;
}

/** Each row's argmax of scores [rows, vocab], picked on the device with its read begun; the scores' storage is released. */
export function pickGreedy(scores: Tensor): QueuedPicks {
  const [rows, vocab] = scores.shape as [number, number];
  const ids = allocStorage(rows, false);
  backend().argmaxRows(scores.storage, rows, vocab, ids);
  releaseStorage(scores.storage);
  const read = readStorage(ids).then((v) => Int32Array.from(v.subarray(0, rows)));
  return { ids, rows, read };
}

/** Queue the step after `last`: every row's picked token goes to the cache's next slot, and its own picks are taken. */
export function queueGreedyStep(model: CausalLM, last: QueuedPicks, cache: KVCache): QueuedPicks {
  return pickGreedy(logitsCached(model, new StoredIds(last.ids, last.rows), [last.rows, 1], cache));
}

/** Let go of picks that will not be used: their storage goes back (later work is ordered after them on the queue) and their read may end as it will. */
export function dropPicks(picks: readonly QueuedPicks[]): void {
  for (const p of picks) {
    p.read.catch(() => {});
    releaseStorage(p.ids);
  }
}
