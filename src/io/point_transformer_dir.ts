import { PointCloudTransformer } from '../models/point_transformer.js';
import { parsePointTransformerConfig } from '../models/point_transformer_config.js';
import { Rng } from '../util/rng.js';
import { loadTypedModel, typedModelFiles } from './typed_model_dir.js';

export const POINT_TRANSFORMER_MODEL_TYPE = 'point-cloud-transformer';

/** config.json and model.safetensors of a point-cloud classifier, ready for writeDirAtomic. */
export function pointTransformerFiles(model: PointCloudTransformer): Record<string, Uint8Array | string> {
  return typedModelFiles(POINT_TRANSFORMER_MODEL_TYPE, model.config, model);
}

/** Load a model directory written by `attn pointcloud train`. */
export function loadPointTransformer(dir: string): PointCloudTransformer {
  return loadTypedModel(dir, POINT_TRANSFORMER_MODEL_TYPE, { name: 'point-cloud model', trainCommand: 'attn pointcloud train' },
    (raw, path) => new PointCloudTransformer(parsePointTransformerConfig(raw, path), new Rng(0)));
}
