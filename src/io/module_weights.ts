import { existsSync } from 'node:fs';
import type { Module } from '../nn/module.js';
import { UserError } from '../util/errors.js';
import { readSafetensors, SafetensorsError, type TensorEntry } from './safetensors.js';

/** The tensors of a safetensors file; a missing or corrupt file is a UserError. */
export function readWeightsFile(path: string): Map<string, TensorEntry> {
  if (!existsSync(path)) throw new UserError(`${path} does not exist`);
  try {
    return readSafetensors(path).tensors;
  } catch (e) {
    if (e instanceof SafetensorsError) throw new UserError(e.message);
    throw e;
  }
}

/**
 * Copy a file's float32 tensors into a module's parameters, by name. A
 * missing, extra, mis-shaped or non-F32 tensor is an error naming it: a
 * checkpoint either fits its config exactly or does not load.
 */
export function loadModuleWeights(model: Module, path: string): void {
  const tensors = readWeightsFile(path);
  const params = model.namedParameters();
  for (const [name, p] of params) {
    const w = tensors.get(name);
    if (!w) throw new UserError(`${path}: missing tensor ${name}`);
    if (w.shape.join() !== p.shape.join()) throw new UserError(`${path}: tensor ${name} has shape [${w.shape}] but the config needs [${p.shape}]`);
    if (!(w.data instanceof Float32Array)) throw new UserError(`${path}: tensor ${name} is not a float32 tensor`);
    p.data.set(w.data);
  }
  const known = new Set(params.map(([n]) => n));
  const extra = [...tensors.keys()].filter((n) => !known.has(n));
  if (extra.length) throw new UserError(`${path}: unexpected tensor ${extra[0]}${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''} for this config`);
}
