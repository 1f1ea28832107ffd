import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ViT } from '../models/vit.js';
import { parseViTConfig } from '../models/vit_config.js';
import { Rng } from '../util/rng.js';
import { recoverDir } from './atomic.js';
import { UserError } from './errors.js';
import { MODEL_FORMAT } from './model_dir.js';
import { readSafetensors, serializeSafetensors, SafetensorsError, type TensorEntry } from './safetensors.js';

export const VIT_MODEL_TYPE = 'vit';

/** config.json and model.safetensors of a ViT, ready for writeDirAtomic. */
export function vitFiles(model: ViT): Record<string, Uint8Array | string> {
  const config = { format: MODEL_FORMAT, model_type: VIT_MODEL_TYPE, ...model.config };
  const tensors = new Map<string, TensorEntry>();
  for (const [name, p] of model.namedParameters()) tensors.set(name, { dtype: 'F32', shape: p.shape, data: p.data });
  return {
    'config.json': JSON.stringify(config, null, 2) + '\n',
    'model.safetensors': serializeSafetensors(tensors, { format: MODEL_FORMAT }),
  };
}

/** Load a ViT model directory written by `attn vit train`; every tensor must be present with its config's shape. */
export function loadViT(dir: string): ViT {
  recoverDir(dir);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`model directory ${dir} does not exist`);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new UserError(`${dir} has no config.json: not a model directory`);
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(configPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${configPath}: ${(e as Error).message}`);
  }
  if (raw?.model_type !== VIT_MODEL_TYPE) {
    throw new UserError(`${dir} is not a ViT model (config.json model_type is ${JSON.stringify(raw?.model_type ?? null)}); train one with \`attn vit train\``);
  }
  let model: ViT;
  try {
    model = new ViT(parseViTConfig(raw, configPath), new Rng(0));
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  const weightsPath = join(dir, 'model.safetensors');
  if (!existsSync(weightsPath)) throw new UserError(`${dir} has no model.safetensors`);
  let tensors: Map<string, TensorEntry>;
  try {
    tensors = readSafetensors(weightsPath).tensors;
  } catch (e) {
    if (e instanceof SafetensorsError) throw new UserError(e.message);
    throw e;
  }
  const params = model.namedParameters();
  for (const [name, p] of params) {
    const t = tensors.get(name);
    if (!t) throw new UserError(`${weightsPath}: missing tensor ${name}`);
    if (!(t.data instanceof Float32Array) || t.shape.join() !== p.shape.join()) {
      throw new UserError(`${weightsPath}: tensor ${name} has shape [${t.shape}] but the config needs float [${p.shape}]`);
    }
    p.data.set(t.data);
  }
  const known = new Set(params.map(([n]) => n));
  const extra = [...tensors.keys()].find((n) => !known.has(n));
  if (extra) throw new UserError(`${weightsPath}: unexpected tensor ${extra} for this config`);
  return model.eval();
}
