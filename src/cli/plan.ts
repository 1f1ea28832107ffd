import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { UserError } from '../util/errors.js';
import { configFromHF } from '../io/hf_gpt2.js';
import { parseGPTConfig } from '../models/gpt_config.js';
import { formatPlan } from '../plan/format.js';
import { PLAN_FORMULAS, planModel, type ModelPlan, type PlanConfig } from '../plan/plan.js';
import { int, num } from './flags.js';

export interface PlanCliOptions {
  model?: string;
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
  const r = raw as Record<string, unknown>;
  if (r.model_type === 'gpt2') return configFromHF(r, file);
  if (r.format === 'attn') {
    try {
      return parseGPTConfig(r, file);
    } catch (e) {
      throw new UserError((e as Error).message);
    }
  }
  const arch = r.model_type ?? (Array.isArray(r.architectures) ? r.architectures[0] : undefined) ?? 'unknown';
  throw new UserError(`${file}: architecture "${String(arch)}" is not supported (attn plans its own GPT configs and Hugging Face "gpt2" ones)`);
}

/** The config from --model and/or the size flags (flags override the file), then the plan. */
export function runPlan(o: PlanCliOptions): ModelPlan {
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
    .description('parameters, FLOPs, memory, KV cache and Chinchilla-optimal tokens of a GPT, from its sizes alone')
    .option('--model <dir>', 'read the sizes from a model directory\'s config.json (attn or Hugging Face GPT-2); size flags override it')
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
      process.stdout.write(o.json ? JSON.stringify(plan) + '\n' : formatPlan(plan));
    });
}
