import { isHost } from '../backend/storage.js';
import { releaseStorage, type Tensor } from './tensor.js';

/**
 * A computation that needs some tensors' values on the way — an evaluation
 * summing losses batch by batch, reference log-probabilities gathered into a
 * map — written once as a generator that yields the tensors it needs read
 * and is handed back their values (in order). Two drivers run it:
 *   - valuesNow on a host backend, where `data` is the values at once;
 *   - valuesAwaited on any backend, awaiting a device's reads (all the
 *     tensors of one yield are read together, in one wait).
 * So a trainer's evaluation is one function for both, not a synchronous one
 * and an asynchronous copy of it.
 *
 * The tensors a computation yields are the driver's once yielded: on a
 * device their storage goes back to the pool as soon as it has been read
 * (a pass's outputs kept past its scratch, withDeviceScratch), so the
 * computation never releases them itself. On a host their arrays are the
 * values handed back, and stay the computation's.
 */
export type ValueReads<R> = Generator<readonly Tensor[], R, Float32Array[]>;

/** Run `reads` with each yielded tensor's host values (host backends). */
export function valuesNow<R>(reads: ValueReads<R>): R {
  let next = reads.next();
  while (!next.done) next = reads.next(next.value.map((t) => t.data));
  return next.value;
}

/** Run `reads` on any backend, awaiting each yield's values (device storage released once read). */
export async function valuesAwaited<R>(reads: ValueReads<R>): Promise<R> {
  let next = reads.next();
  while (!next.done) {
    const tensors = next.value;
    const values = await Promise.all(tensors.map((t) => t.read()));
    for (const t of tensors) if (!isHost(t.storage)) releaseStorage(t.storage);
    next = reads.next(values);
  }
  return next.value;
}
