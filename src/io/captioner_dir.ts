import { Captioner } from '../models/captioner.js';
import { parseCaptionerConfig } from '../models/captioner_config.js';
import { Rng } from '../util/rng.js';
import { loadTypedModel, typedModelFiles } from './typed_model_dir.js';

export const CAPTIONER_MODEL_TYPE = 'image-captioner';

/** config.json and model.safetensors of a captioner, ready for writeDirAtomic. */
export function captionerFiles(model: Captioner): Record<string, Uint8Array | string> {
  return typedModelFiles(CAPTIONER_MODEL_TYPE, model.config, model);
}

/** Load a model directory written by `attn caption train`. */
export function loadCaptioner(dir: string): Captioner {
  return loadTypedModel(dir, CAPTIONER_MODEL_TYPE, { name: 'captioning model', trainCommand: 'attn caption train' },
    (raw, path) => new Captioner(parseCaptionerConfig(raw, path), new Rng(0)));
}
