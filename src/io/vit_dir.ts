import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ViT } from '../models/vit.js';
import { parseViTConfig } from '../models/vit_config.js';
import { Rng } from '../util/rng.js';
import { recoverDir } from './atomic.js';
import { UserError } from '../util/errors.js';
import { checkConfigSizes } from './config_limits.js';
import { MODEL_FORMAT } from './model_dir.js';
import { serializeSafetensors, type TensorEntry } from './safetensors.js';
import { loadModuleWeights } from './module_weights.js';
import { withoutInit } from '../nn/init.js';

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
  checkConfigSizes(raw, configPath, join(dir, 'model.safetensors'));
  let model: ViT;
  try {
    model = withoutInit(() => new ViT(parseViTConfig(raw, configPath), new Rng(0)));
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  loadModuleWeights(model, join(dir, 'model.safetensors'));
  return model.eval();
}
