import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Llama } from '../models/llama.js';
import { llamaConfigFromHF, type LlamaConfig } from '../models/llama_config.js';
import { withoutInit } from '../nn/init.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { readSafetensors, SafetensorsError, type TensorEntry } from './safetensors.js';

/**
 * Hugging Face directories of the Llama family (LlamaForCausalLM,
 * Qwen2ForCausalLM, MistralForCausalLM) as downloaded: config.json, and the
 * weights in model.safetensors or in shards listed by
 * model.safetensors.index.json. F32, F16 and BF16 tensors all become float32
 * (safetensors.ts widens them). attn's Llama names its parameters as the
 * checkpoint does, so loading is a lookup, not a renaming.
 */

const SINGLE_FILE = 'model.safetensors';
const INDEX_FILE = 'model.safetensors.index.json';

/** Tensors some checkpoints carry that are not parameters: rotary frequency buffers (recomputed from the config). */
function isBuffer(name: string): boolean {
  return /\.rotary_emb\.inv_freq$/.test(name);
}

/** Does this directory hold its weights as shards (model.safetensors.index.json)? */
export function hasShardIndex(dir: string): boolean {
  return existsSync(join(dir, INDEX_FILE));
}

function readShard(path: string): Map<string, TensorEntry> {
  try {
    return readSafetensors(path).tensors;
  } catch (e) {
    if (e instanceof SafetensorsError) throw new UserError(e.message);
    throw e;
  }
}

/**
 * Every tensor of a Hugging Face directory, from model.safetensors or from
 * the shards its index names. Each shard must exist and hold exactly the
 * tensors the index assigns to it.
 */
export function readHFWeights(dir: string): { tensors: Map<string, TensorEntry>; source: string } {
  const indexPath = join(dir, INDEX_FILE);
  if (!existsSync(indexPath)) {
    const path = join(dir, SINGLE_FILE);
    if (!existsSync(path)) throw new UserError(`${dir} has neither ${SINGLE_FILE} nor ${INDEX_FILE}`);
    return { tensors: readShard(path), source: path };
  }
  let index: { weight_map?: unknown };
  try {
    index = JSON.parse(readFileSync(indexPath, 'utf8')) as { weight_map?: unknown };
  } catch (e) {
    throw new UserError(`${indexPath}: ${e instanceof SyntaxError ? 'invalid JSON: ' : ''}${(e as Error).message}`);
  }
  const map = index.weight_map;
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw new UserError(`${indexPath}: no "weight_map" object`);
  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) throw new UserError(`${indexPath}: tensor ${name} maps to ${JSON.stringify(shard)}, not a file name in the directory`);
    byShard.set(shard, [...(byShard.get(shard) ?? []), name]);
  }
  // Check that every shard is there before reading any: a partial download fails at once.
  for (const shard of byShard.keys()) {
    if (!existsSync(join(dir, shard))) throw new UserError(`${dir}: shard ${shard} named by ${INDEX_FILE} is missing`);
  }
  const tensors = new Map<string, TensorEntry>();
  for (const [shard, names] of byShard) {
    const held = readShard(join(dir, shard));
    for (const name of names) {
      const t = held.get(name);
      if (!t) throw new UserError(`${join(dir, shard)}: has no tensor ${name}, which ${INDEX_FILE} places there`);
      tensors.set(name, t);
    }
    // A tensor the index does not place in this shard means the files and the index are from different checkpoints.
    const listed = new Set(names);
    const stray = [...held.keys()].find((n) => !listed.has(n));
    if (stray !== undefined) throw new UserError(`${join(dir, shard)}: holds tensor ${stray}, which ${INDEX_FILE} does not place there`);
  }
  return { tensors, source: indexPath };
}

/** Read config.json's Llama-family config and the weights, and build the model. */
export function loadHFLlama(dir: string, hf: Record<string, unknown>, configPath: string): { model: Llama; config: LlamaConfig } {
  const config = llamaConfigFromHF(hf, configPath);
  const { tensors, source } = readHFWeights(dir);
  const model = withoutInit(() => new Llama(config, new Rng(0))); // every weight is assigned below
  assignLlamaWeights(model, tensors, source);
  model.eval();
  return { model, config };
}

/**
 * Copy checkpoint tensors into the model's parameters by name. Missing,
 * mis-shaped, non-float and unexpected tensors are errors; a tied model may
 * carry an lm_head.weight only if it equals the embedding.
 */
export function assignLlamaWeights(model: Llama, tensors: Map<string, TensorEntry>, source: string): void {
  const params = model.namedParameters();
  for (const [name, p] of params) {
    const t = tensors.get(name);
    if (!t) throw new UserError(`${source}: missing tensor ${name}`);
    if (t.shape.join() !== p.shape.join()) throw new UserError(`${source}: tensor ${name} has shape [${t.shape}] but config.json needs [${p.shape}]`);
    if (!(t.data instanceof Float32Array)) throw new UserError(`${source}: tensor ${name} has dtype ${t.dtype}, expected F32, F16 or BF16`);
    p.data.set(t.data);
  }
  const known = new Set(params.map(([n]) => n));
  const head = tensors.get('lm_head.weight');
  if (model.config.tie_word_embeddings && head) {
    const embed = model.model.embed_tokens.weight.data;
    if (head.data.length !== embed.length || head.data.some((v, i) => v !== embed[i])) {
      throw new UserError(`${source}: lm_head.weight differs from model.embed_tokens.weight although config.json ties them (tie_word_embeddings)`);
    }
    known.add('lm_head.weight');
  }
  const extra = [...tensors.keys()].filter((n) => !known.has(n) && !isBuffer(n));
  if (extra.length) throw new UserError(`${source}: unexpected tensor ${extra[0]}${extra.length > 1 ? ` (and ${extra.length - 1} more)` : ''} for this config`);
}
