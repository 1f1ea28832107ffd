import type { Storage } from '../backend/storage.js';

/**
 * Token ids kept where the backend keeps values, one float per id: what
 * backend().argmaxRows writes when greedy decoding picks tokens on a device.
 * The next step's embedding lookup reads them there, so a step can be queued
 * before the last one's tokens have come back to the host
 * (generate/decode_ahead.ts). Inference only: an embedding records no
 * gradient for them.
 */
export class StoredIds {
  constructor(
    readonly storage: Storage,
    /** How many ids (the storage may be longer). */
    readonly length: number,
  ) {}
}

/** Token ids on the host, or kept by the backend (StoredIds). */
export type TokenIds = Int32Array | StoredIds;
