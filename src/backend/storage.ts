/**
 * Where a tensor's values live. A host backend (js, native) keeps them in a
 * Float32Array that JavaScript can index; a device backend (webgpu) keeps
 * them in its own memory and hands out an opaque DeviceArray that only it
 * can read. Ops pass storages to the backend without looking inside, so the
 * same model code runs over either kind.
 */

/**
 * A device backend's handle on `length` floats in its memory (a range of a
 * GPU buffer). Only the backend named `backend` can use it; anyone else reads
 * its values with `await tensor.read()`.
 */
export interface DeviceArray {
  readonly backend: string;
  readonly length: number;
}

/** A tensor's values: a host array, or a device backend's handle. */
export type Storage = Float32Array | DeviceArray;

export function isHost(s: Storage): s is Float32Array {
  return s instanceof Float32Array;
}

/**
 * The memory of a device backend: what a host backend gets for free from
 * typed arrays (allocate, index, copy, fill, view) done through the backend,
 * and the one way back to the host, asynchronous (`read`). Work is queued,
 * not waited for: `read` and `sync` are the only points that wait for the
 * device.
 */
export interface DeviceMemory<F> {
  /** n floats; zeroed, or holding whatever their pooled buffer held. Throws UserError over the device's limits. */
  alloc(n: number, zeroed: boolean): F;
  /** Hand back storage nobody references any more (it may be reused by the next alloc). */
  release(s: F): void;
  /** A device copy of host values. */
  upload(values: Float32Array): F;
  /** Overwrite the first values.length floats of s with host values. */
  write(s: F, values: Float32Array): void;
  /** dst[dstOffset … + n) = src[srcOffset … + n) on the device. */
  copy(src: F, srcOffset: number, dst: F, dstOffset: number, n: number): void;
  fill(s: F, value: number): void;
  /** floats begin … begin + length of s, sharing its memory (a parameter inside an arena). */
  view(s: F, begin: number, length: number): F;
  /** One storage over `parts` when they lie one after another in one allocation (a view sharing their memory), else null. */
  adjoin(parts: readonly F[]): F | null;
  /** The values of s, once every queued command that writes it has run. */
  read(s: F): Promise<Float32Array>;
  /** Submit the queued commands without waiting for them (a step nobody reads: its freed memory becomes reusable). */
  flush(): void;
  /** Resolves when every queued command has finished (rejects with UserError when the device was lost). */
  sync(): Promise<void>;
}

/** What reading a device tensor's values on the host throws: one line naming the way out. */
export class DeviceValuesError extends Error {
  constructor(backendName: string, what: string) {
    super(`not supported on ${backendName}: ${what} reads tensor values on the host; the values live on the device (use \`await tensor.read()\`)`);
    this.name = 'DeviceValuesError';
  }
}
