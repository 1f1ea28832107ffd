import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { UserError } from '../util/errors.js';
import { configFromHF } from '../io/hf_gpt2.js';
import { parseGPTConfig } from '../models/gpt_config.js';
import { formatPlan } from '../plan/format.js';
import { PLAN_FORMULAS, planModel, type ModelPlan, type PlanConfig } from '../plan/plan.js';
import { formatLlamaPlan, planLlama, type LlamaPlan, type LlamaPlanConfig } from '../plan/llama_plan.js';
import { hfLlamaFamily, llamaConfigFromHF, parseLlamaConfig } from '../models/llama_config.js';
import { LLAMA_MODEL_TYPE } from '../io/model_dir.js';
import { int, num } from './flags.js';

export interface PlanCliOptions {
  model?: string;
  arch?: string;
  nKvHead?: number;
  headDim?: number;
  intermediateSize?: number;
  tieWordEmbeddings?: boolean;
  attentionBias?: boolean;
  nLayer?: number;
  nHead?: number;
  nEmbd?: number;
  blockSize?: number;
  vocabSize?: number;
  bias: boolean;
  batchSize: number;
  tokens?: number;
  bytes: number;
  json?: boolean;
}

/**
 * The sizes from a model directory's config.json (or that file itself): attn's own
 * ("format": "attn") or Hugging Face GPT-2's ("model_type": "gpt2", n_positions).
 * Only the config is read, never the weights.
 */
export function readPlanConfig(path: string): PlanConfig {
  const { raw: r, file } = readConfigJson(path);
  if (r.model_type === 'gpt2') return configFromHF(r, file);
  if (r.format === 'attn') {
    if (r.model_type !== undefined && r.model_type !== 'attn-gpt') throw new UserError(`${file}: model_type "${String(r.model_type)}" is not attn's GPT (attn plans its own GPT and Llama configs)`);
    try {
      return parseGPTConfig(r, file);
    } catch (e) {
      throw new UserError((e as Error).message);
    }
  }
  const arch = r.model_type ?? (Array.isArray(r.architectures) ? r.architectures[0] : undefined) ?? 'unknown';
  throw new UserError(`${file}: architecture "${String(arch)}" is not supported (attn plans its own GPT configs, Hugging Face "gpt2" ones and Llama-family ones)`);
}

/** A model directory's config.json (or that file itself) as an object. */
function readConfigJson(path: string): { raw: Record<string, unknown>; file: string } {
  if (!existsSync(path)) throw new UserError(`${path} does not exist`);
  const file = statSync(path).isDirectory() ? join(path, 'config.json') : path;
  if (!existsSync(file)) throw new UserError(`${path} has no config.json: not a model directory`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UserError(`${file}: not valid JSON (${(e as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${file}: expected a JSON object`);
  return { raw: raw as Record<string, unknown>, file };
}

/**
 * A Llama-family plan (--arch llama, or --model with attn's own Llama or a
 * Hugging Face Llama, Qwen2 or Mistral config.json): the GPT's size flags plus --n-kv-head,
 * --head-dim, --intermediate-size, --tie-word-embeddings, --attention-bias.
 */
function runLlamaPlan(o: PlanCliOptions, fromFile: LlamaPlanConfig | null): LlamaPlan {
  const cfg: Record<string, unknown> = { ...(fromFile ?? { tie_word_embeddings: o.tieWordEmbeddings === true, attention_bias: o.attentionBias === true }) };
  const flags: [keyof PlanCliOptions, keyof LlamaPlanConfig, string][] = [
    ['nLayer', 'n_layer', '--n-layer'],
    ['nHead', 'n_head', '--n-head'],
    ['nKvHead', 'n_kv_head', '--n-kv-head'],
    ['nEmbd', 'n_embd', '--n-embd'],
    ['headDim', 'head_dim', '--head-dim'],
    ['intermediateSize', 'intermediate_size', '--intermediate-size'],
    ['blockSize', 'block_size', '--block-size'],
    ['vocabSize', 'vocab_size', '--vocab-size'],
  ];
  for (const [opt, key, flag] of flags) {
    if (o[opt] !== undefined) cfg[key] = o[opt];
  }
  // Defaults a reader expects: multi-head attention, head_dim = d / h.
  cfg.n_kv_head ??= cfg.n_head;
  if (cfg.head_dim === undefined && typeof cfg.n_embd === 'number' && typeof cfg.n_head === 'number') cfg.head_dim = cfg.n_embd / cfg.n_head;
  for (const [, key, flag] of flags) {
    const v = cfg[key];
    if (v === undefined) throw new UserError(`missing ${flag} (give the model's sizes, or --model DIR)`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new UserError(`${flag} must be a positive integer, got ${String(v)}`);
  }
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new UserError(`--batch-size must be a positive integer, got ${o.batchSize}`);
  if (o.tokens !== undefined && !(o.tokens > 0)) throw new UserError(`--tokens must be positive, got ${o.tokens}`);
  if (!(o.bytes > 0)) throw new UserError(`--bytes must be positive, got ${o.bytes}`);
  try {
    return planLlama(cfg as unknown as LlamaPlanConfig, { batchSize: o.batchSize, bytesPerValue: o.bytes, ...(o.tokens !== undefined ? { tokens: o.tokens } : {}) });
  } catch (e) {
    throw new UserError((e as Error).message);
  }
}

/** The config from --model and/or the size flags (flags override the file), then the plan. */
export function runPlan(o: PlanCliOptions): ModelPlan | LlamaPlan {
  if (o.arch !== undefined && o.arch !== 'gpt' && o.arch !== 'llama') throw new UserError(`--arch must be gpt or llama, got ${o.arch}`);
  if (o.model) {
    const { raw, file } = readConfigJson(o.model);
    if (hfLlamaFamily(raw)) return runLlamaPlan(o, llamaConfigFromHF(raw, file));
    if (raw.format === 'attn' && raw.model_type === LLAMA_MODEL_TYPE) return runLlamaPlan(o, parseLlamaConfig(raw, file));
    if (o.arch === 'llama') throw new UserError(`--arch llama: ${file} is not a Llama-family config (leave out --arch to plan it as it is)`);
  }
  if (o.arch === 'llama') return runLlamaPlan(o, null);
  return runGPTPlan(o);
}

function runGPTPlan(o: PlanCliOptions): ModelPlan {
  const base: Partial<PlanConfig> = o.model ? readPlanConfig(o.model) : { bias: o.bias };
  const flags: [keyof PlanCliOptions, keyof PlanConfig, string][] = [
    ['nLayer', 'n_layer', '--n-layer'],
    ['nHead', 'n_head', '--n-head'],
    ['nEmbd', 'n_embd', '--n-embd'],
    ['blockSize', 'block_size', '--block-size'],
    ['vocabSize', 'vocab_size', '--vocab-size'],
  ];
  const cfg: Record<string, unknown> = { ...base };
  for (const [opt, key, flag] of flags) {
    if (o[opt] !== undefined) cfg[key] = o[opt];
    if (cfg[key] === undefined) throw new UserError(`missing ${flag} (give the model's sizes, or --model DIR)`);
    const v = cfg[key] as number;
    if (!Number.isInteger(v) || v < 1) throw new UserError(`${flag} must be a positive integer, got ${v}`);
  }
  if (!o.model) cfg.bias = o.bias;
  if (!Number.isInteger(o.batchSize) || o.batchSize < 1) throw new UserError(`--batch-size must be a positive integer, got ${o.batchSize}`);
  if (o.tokens !== undefined && !(o.tokens > 0)) throw new UserError(`--tokens must be positive, got ${o.tokens}`);
  if (!(o.bytes > 0)) throw new UserError(`--bytes must be positive, got ${o.bytes}`);
  try {
    return planModel(cfg as PlanConfig, { batchSize: o.batchSize, bytesPerValue: o.bytes, ...(o.tokens !== undefined ? { tokens: o.tokens } : {}) });
  } catch (e) {
    throw new UserError((e as Error).message);
  }
}

export function planCommand(): Command {
  return new Command('plan')
    .description('parameters, FLOPs, memory, KV cache and Chinchilla-optimal tokens of a GPT or a Llama-family model, from its sizes alone')
    .option('--model <dir>', 'read the sizes from a model directory\'s config.json (attn\'s GPT or Llama, Hugging Face GPT-2, Llama, Qwen2, Mistral); size flags override it')
    .option('--arch <gpt|llama>', 'the family to plan from flags: gpt (default) or llama (RMSNorm, SwiGLU, rotary, grouped-query attention)')
    .option('--n-kv-head <n>', 'llama: key/value heads (grouped-query attention; default --n-head)', int)
    .option('--head-dim <n>', 'llama: channels per head (default --n-embd / --n-head)', int)
    .option('--intermediate-size <n>', 'llama: width of the SwiGLU MLP', int)
    .option('--tie-word-embeddings', 'llama: the output head reuses the token embedding')
    .option('--attention-bias', 'llama: biases on q, k and v (Qwen2)')
    .option('--n-layer <n>', 'transformer blocks (L)', int)
    .option('--n-head <n>', 'attention heads per block (h)', int)
    .option('--n-embd <n>', 'embedding width (d); divisible by --n-head', int)
    .option('--block-size <n>', 'context length in tokens (T)', int)
    .option('--vocab-size <n>', 'vocabulary size (V)', int)
    .option('--no-bias', 'no biases in Linear and LayerNorm layers (nanoGPT\'s recipe; default: biases, as GPT-2)')
    .option('--batch-size <n>', 'sequences per training step, for activation memory and the KV cache', int, 1)
    .option('--tokens <n>', 'a training budget in tokens: adds its compute and tokens per parameter', num)
    .option('--bytes <n>', 'bytes per value for weights, states, activations and KV cache (4 = fp32, 2 = fp16/bf16)', num, 4)
    .option('--json', 'print the plan as one JSON object')
    .addHelpText('after', '\nFormulas (L layers, h heads, d dims, T context, V vocab, b = 1 with biases):\n' + Object.entries(PLAN_FORMULAS).map(([k, v]) => `  ${k}: ${v}`).join('\n'))
    .action((o: PlanCliOptions) => {
      const plan = runPlan(o);
      process.stdout.write(o.json ? JSON.stringify(plan) + '\n' : 'arch' in plan ? formatLlamaPlan(plan) : formatPlan(plan));
    });
}
