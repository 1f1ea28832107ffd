import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Embedder } from '../models/embedder.js';
import { parseEmbedderConfig, type EmbedderConfig } from '../models/embedder_config.js';
import { loadDirTokenizer, type Tokenizer } from '../tokenizers/index.js';
import { Rng } from '../util/rng.js';
import { writeDirAtomic } from './atomic.js';
import { UserError } from '../util/errors.js';
import { checkConfigSizes } from './config_limits.js';
import { MODEL_FORMAT, openModelDir } from './model_dir.js';
import { serializeSafetensors, type TensorEntry } from './safetensors.js';
import { loadModuleWeights } from './module_weights.js';
import { withoutInit } from '../nn/init.js';

export const EMBEDDER_TYPE = 'embedder';

export interface LoadedEmbedder {
  model: Embedder;
  tokenizer: Tokenizer;
  config: EmbedderConfig;
}

/**
 * Save an embedder directory atomically: config.json ("model_type":
 * "embedder"), model.safetensors, tokenizer.json, and `extra` files (e.g. the
 * training record). A crash leaves the previous directory whole.
 */
export function saveEmbedder(dir: string, model: Embedder, tokenizer: Tokenizer, extra: Record<string, string> = {}): void {
  const config = { format: MODEL_FORMAT, model_type: EMBEDDER_TYPE, ...model.config };
  const tensors = new Map<string, TensorEntry>(model.namedParameters().map(([n, p]) => [n, { dtype: 'F32', shape: p.shape, data: p.data }]));
  writeDirAtomic(dir, {
    'config.json': JSON.stringify(config, null, 2) + '\n',
    'model.safetensors': serializeSafetensors(tensors, { format: MODEL_FORMAT }),
    'tokenizer.json': JSON.stringify(tokenizer.toJSON()) + '\n',
    ...extra,
  });
}

/** Load what saveEmbedder wrote; every way it can be wrong is one clear UserError. */
export function loadEmbedder(dir: string): LoadedEmbedder {
  openModelDir(dir);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new UserError(`${dir} has no config.json: not a model directory`);
  const raw = readConfig(configPath);
  if (raw.model_type !== EMBEDDER_TYPE) {
    throw new UserError(`${dir} is not an embedder (its config.json says model_type ${JSON.stringify(raw.model_type ?? null)}); train one with \`attn embed train\``);
  }
  checkConfigSizes(raw, configPath, join(dir, 'model.safetensors'));
  let config: EmbedderConfig;
  try {
    config = parseEmbedderConfig(raw, configPath);
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  const tokenizer = loadDirTokenizer(dir);
  if (!tokenizer) throw new UserError(`${dir} has no tokenizer.json`);
  if (tokenizer.vocabSize > config.vocab_size) throw new UserError(`${dir}: tokenizer has ${tokenizer.vocabSize} tokens but the model's vocab_size is ${config.vocab_size}`);
  const model = withoutInit(() => new Embedder(config, new Rng(0)));
  loadModuleWeights(model, join(dir, 'model.safetensors'));
  model.eval();
  return { model, tokenizer, config };
}

function readConfig(path: string): Record<string, unknown> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: ${e instanceof SyntaxError ? 'invalid JSON: ' : ''}${(e as Error).message}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${path}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

