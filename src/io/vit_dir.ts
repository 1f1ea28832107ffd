import { ViT } from '../models/vit.js';
import { parseViTConfig } from '../models/vit_config.js';
import { Rng } from '../util/rng.js';
import { loadTypedModel, typedModelFiles } from './typed_model_dir.js';

export const VIT_MODEL_TYPE = 'vit';

/** config.json and model.safetensors of a ViT, ready for writeDirAtomic. */
export function vitFiles(model: ViT): Record<string, Uint8Array | string> {
  return typedModelFiles(VIT_MODEL_TYPE, model.config, model);
}

/** Load a ViT model directory written by `attn vit train`; every tensor must be present with its config's shape. */
export function loadViT(dir: string): ViT {
  return loadTypedModel(dir, VIT_MODEL_TYPE, { name: 'ViT model', trainCommand: 'attn vit train' }, (raw, path) => new ViT(parseViTConfig(raw, path), new Rng(0)));
}
