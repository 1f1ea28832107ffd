import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { withoutInit } from '../nn/init.js';
import type { Module } from '../nn/module.js';
import { UserError } from '../util/errors.js';
import { checkConfigSizes } from './config_limits.js';
import { MODEL_FORMAT, openModelDir } from './model_dir.js';
import { loadModuleWeights } from './module_weights.js';
import { serializeSafetensors, type TensorEntry } from './safetensors.js';

/**
 * The model directory of a model that is one Module and one config: the
 * ViT, the point-cloud transformer, the captioner. config.json names the
 * model_type (so loading the wrong kind is one clear line) and carries the
 * config's fields; model.safetensors holds every parameter by its name.
 */
export function typedModelFiles(modelType: string, config: object, model: Module): Record<string, Uint8Array | string> {
  const tensors = new Map<string, TensorEntry>();
  for (const [name, p] of model.namedParameters()) tensors.set(name, { dtype: 'F32', shape: p.shape, data: p.data });
  return {
    'config.json': JSON.stringify({ format: MODEL_FORMAT, model_type: modelType, ...config }, null, 2) + '\n',
    'model.safetensors': serializeSafetensors(tensors, { format: MODEL_FORMAT }),
  };
}

/**
 * Load a directory written with typedModelFiles: config.json must say
 * `modelType` (else "… is not a <kind>; train one with `<command>`"), `build`
 * makes the model from the raw config, and every tensor must be present
 * with its config's shape. The model comes back in eval mode.
 */
export function loadTypedModel<M extends Module>(dir: string, modelType: string, kind: { name: string; trainCommand: string }, build: (raw: Record<string, unknown>, configPath: string) => M): M {
  openModelDir(dir);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new UserError(`${dir} has no config.json: not a model directory`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${configPath}: ${(e as Error).message}`);
  }
  if (raw?.model_type !== modelType) {
    throw new UserError(`${dir} is not a ${kind.name} (config.json model_type is ${JSON.stringify(raw?.model_type ?? null)}); train one with \`${kind.trainCommand}\``);
  }
  checkConfigSizes(raw, configPath, join(dir, 'model.safetensors'));
  // A composite model nests its parts' configs (the captioner's "image"): check their sizes too.
  for (const part of Object.values(raw)) {
    if (part && typeof part === 'object' && !Array.isArray(part)) checkConfigSizes(part as Record<string, unknown>, configPath, join(dir, 'model.safetensors'));
  }
  let model: M;
  try {
    model = withoutInit(() => build(raw, configPath));
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  loadModuleWeights(model, join(dir, 'model.safetensors'));
  model.eval();
  return model;
}
