import { backend, setBackend } from '../backend/index.js';
import { isHost, type Storage } from '../backend/storage.js';
import { readStorage, toBackend, type Tensor } from '../tensor/tensor.js';
import { placeJoined } from './joined_linear.js';
import type { Module } from './module.js';

/**
 * Where a model's parameters live. A model is built or loaded with host
 * arrays (initialisers and file readers fill typed arrays); on a device
 * backend, moveToBackend uploads them once, after which every op keeps its
 * values on the device (projections that read one input end to end in one
 * allocation: joined_linear.ts). On a host backend it changes nothing. (An optimizer
 * does the same for the parameters it is given: see ParameterArena.)
 */
export function moveToBackend(module: Module): void {
  // Projections that read one input go end to end first, so that they can run as one product (joined_linear.ts).
  if (backend().device) placeJoined(module);
  for (const p of module.parameters()) {
    p.storage = toBackend(p.storage);
    if (p.gradStorage) p.gradStorage = toBackend(p.gradStorage);
  }
}

/**
 * Run `fn` with every tensor's values on the host — read from the device
 * once, all together — then put the device storage back: a checkpoint save
 * or an export in the middle of a device run, through the same synchronous
 * code a host run uses. On a host backend it just runs fn.
 */
export async function withHostValues<T>(tensors: readonly Tensor[], fn: () => T): Promise<T> {
  const onDevice = tensors.filter((t) => !isHost(t.storage));
  if (onDevice.length === 0) return fn();
  const host = await Promise.all(onDevice.map((t) => readStorage(t.storage)));
  const kept: Storage[] = onDevice.map((t) => t.storage);
  onDevice.forEach((t, i) => (t.storage = host[i]!));
  try {
    return fn();
  } finally {
    onDevice.forEach((t, i) => (t.storage = kept[i]!));
  }
}

/**
 * Run synchronous model code that a device backend has no kernels or no
 * reason for (held-out evaluations that decode token by token, recall over
 * a few hundred texts, a save) while the weights live on the device: they are
 * read back once, fn runs on the js backend over those host copies, and the
 * device storage and the current backend are put back. On a host backend it
 * is fn() itself, returned at once (so synchronous loops can call it).
 */
export function onHost<T>(tensors: readonly Tensor[], fn: () => T): T | Promise<T> {
  const current = backend();
  if (current.device === undefined) return fn();
  return withHostValues(tensors, () => {
    setBackend('js');
    try {
      return fn();
    } finally {
      setBackend(current.name);
    }
  });
}
