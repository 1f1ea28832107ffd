import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TaskSource } from '../data/seq2seq_task.js';
import { Transformer } from '../models/transformer.js';
import { parseTransformerConfig, type TransformerConfig } from '../models/transformer_config.js';
import { PieceTokenizer } from '../tokenizers/piece.js';
import { Rng } from '../util/rng.js';
import { writeDirAtomic } from './atomic.js';
import { UserError } from '../util/errors.js';
import { checkConfigSizes } from './config_limits.js';
import { openModelDir } from './model_dir.js';
import { serializeSafetensors, type TensorEntry } from './safetensors.js';
import { loadModuleWeights } from './module_weights.js';
import { withoutInit } from '../nn/init.js';

/** config.json's model_type for encoder–decoder checkpoints (GPT checkpoints say "attn-gpt"). */
export const SEQ2SEQ_MODEL_TYPE = 'transformer-seq2seq';

export interface Seq2SeqModel {
  model: Transformer;
  tokenizer: PieceTokenizer;
  task: TaskSource;
}

/** Write config.json, model.safetensors, tokenizer.json (and any extra files) as one atomic directory. */
export function saveSeq2Seq(dir: string, m: Seq2SeqModel, extra: Record<string, string> = {}): void {
  const config = { format: 'attn', model_type: SEQ2SEQ_MODEL_TYPE, ...m.model.config, task: m.task };
  const tensors = new Map<string, TensorEntry>();
  for (const [name, p] of m.model.namedParameters()) tensors.set(name, { dtype: 'F32', shape: p.shape, data: p.data });
  writeDirAtomic(dir, {
    'config.json': JSON.stringify(config, null, 2) + '\n',
    'model.safetensors': serializeSafetensors(tensors, { format: 'attn' }),
    'tokenizer.json': JSON.stringify(m.tokenizer.toJSON()) + '\n',
    ...extra,
  });
}

function readJSON(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new UserError(`${path} is missing`);
  try {
    const v = JSON.parse(readFileSync(path, 'utf8')) as unknown;
    if (typeof v === 'object' && v !== null && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch (e) {
    throw new UserError(`${path}: invalid JSON: ${(e as Error).message}`);
  }
  throw new UserError(`${path}: expected a JSON object`);
}

/** Load a directory written by saveSeq2Seq; any missing, extra or mis-shaped tensor is an error. */
export function loadSeq2Seq(dir: string): Seq2SeqModel {
  openModelDir(dir);
  const raw = readJSON(join(dir, 'config.json'));
  if (raw.model_type !== SEQ2SEQ_MODEL_TYPE) {
    throw new UserError(`${dir} is not a translation model (model_type ${JSON.stringify(raw.model_type ?? null)}; expected "${SEQ2SEQ_MODEL_TYPE}" from attn seq2seq train)`);
  }
  checkConfigSizes(raw, join(dir, 'config.json'), join(dir, 'model.safetensors'));
  let config: TransformerConfig;
  try {
    config = parseTransformerConfig(raw, join(dir, 'config.json'));
  } catch (e) {
    throw new UserError((e as Error).message);
  }
  const tokenizer = PieceTokenizer.fromJSON(readJSON(join(dir, 'tokenizer.json')), join(dir, 'tokenizer.json'));
  if (tokenizer.vocabSize !== config.vocab_size) throw new UserError(`${dir}: tokenizer has ${tokenizer.vocabSize} tokens but vocab_size is ${config.vocab_size}`);
  const model = withoutInit(() => new Transformer(config, new Rng(0)));
  loadModuleWeights(model, join(dir, 'model.safetensors'));
  model.eval();
  return { model, tokenizer, task: raw.task as TaskSource };
}

