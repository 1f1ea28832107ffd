/**
 * LoRA adapters in PEFT's on-disk layout, so adapters move between attn and
 * Python (`PeftModel.from_pretrained(base, DIR)` reads what attn writes, and
 * attn reads what PEFT writes):
 *
 *   adapter_config.json        {"peft_type": "LORA", "r", "lora_alpha", "target_modules", "fan_in_fan_out", …}
 *   adapter_model.safetensors  base_model.model.<HF module name>.lora_A.weight  [r, in]
 *                              base_model.model.<HF module name>.lora_B.weight  [out, r]
 *
 * The HF module name is the checkpoint's: "transformer.h.0.attn.c_attn" for
 * GPT-2 (attn drops "transformer."), "model.layers.0.self_attn.q_proj" for the
 * Llama family (attn's names are the checkpoint's). lora_A and lora_B keep
 * PyTorch's Linear layout even for GPT-2's Conv1D layers (fan_in_fan_out
 * only says how the *base* weight is stored), so they load without transposing.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GPT } from '../models/gpt.js';
import type { Module } from '../nn/module.js';
import { addLoRA, loraLayers } from '../nn/lora.js';
import { linearShape } from '../nn/lora_bank.js';
import { UserError } from '../util/errors.js';
import { Rng } from '../util/rng.js';
import { writeDirAtomic } from './atomic.js';
import { readWeightsFile } from './module_weights.js';
import { serializeSafetensors, type TensorEntry } from './safetensors.js';

export const ADAPTER_CONFIG = 'adapter_config.json';
export const ADAPTER_WEIGHTS = 'adapter_model.safetensors';

/** One adapted layer's matrices: A [r, in], B [out, r]. */
export interface LayerAdapter {
  A: Float32Array;
  B: Float32Array;
  inFeatures: number;
  outFeatures: number;
}

/** An adapter read from disk and checked against a base model: per layer (attn's module names), its matrices. */
export interface LoRAAdapter {
  r: number;
  alpha: number;
  /** alpha / r. */
  scaling: number;
  dropout: number;
  /** target_modules as the config lists them. */
  targets: string[];
  /** "h.0.attn.c_attn" → its A and B. */
  layers: Map<string, LayerAdapter>;
  /** The directory it came from (for messages). */
  source: string;
}

/** What comes before attn's module name in PEFT's tensor names, for this model's family. */
export function peftPrefix(model: Module): string {
  return model instanceof GPT ? 'base_model.model.transformer.' : 'base_model.model.';
}

/** The family the prefix announces, for a clear mismatch message. */
function familyOf(name: string): string {
  if (name.startsWith('base_model.model.transformer.')) return 'GPT-2';
  if (name.startsWith('base_model.model.model.')) return 'Llama-family';
  return 'unknown';
}

function readConfig(dir: string): Record<string, unknown> {
  const path = join(dir, ADAPTER_CONFIG);
  if (!existsSync(path)) throw new UserError(`${dir} has no ${ADAPTER_CONFIG}: not a PEFT adapter directory`);
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new UserError(`${path}: invalid JSON: ${(e as Error).message.replace(/\s*\n\s*/g, ' ')}`); // one line: Node quotes the text around the fault
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${path}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

/**
 * Read an adapter directory and check it fits `model`: the same family, every
 * adapted layer a Linear of the model, every matrix of the right shape. Any
 * mismatch is a UserError naming the tensor. The model is not changed.
 */
export function readAdapter(dir: string, model: Module): LoRAAdapter {
  const cfg = readConfig(dir);
  const cfgPath = join(dir, ADAPTER_CONFIG);
  if (cfg.peft_type !== 'LORA') throw new UserError(`${cfgPath}: peft_type ${JSON.stringify(cfg.peft_type)} is not supported (attn reads LoRA adapters, "LORA")`);
  const r = cfg.r;
  const alpha = cfg.lora_alpha ?? r;
  if (typeof r !== 'number' || !Number.isInteger(r) || r < 1) throw new UserError(`${cfgPath}: "r" must be a positive integer`);
  if (typeof alpha !== 'number' || !(alpha > 0)) throw new UserError(`${cfgPath}: "lora_alpha" must be a positive number`);
  if (cfg.use_rslora === true) throw new UserError(`${cfgPath}: use_rslora (scaling alpha/√r) is not supported`);
  if (cfg.use_dora === true) throw new UserError(`${cfgPath}: use_dora (DoRA) is not supported`);
  for (const key of ['rank_pattern', 'alpha_pattern']) {
    const v = cfg[key];
    if (v && typeof v === 'object' && Object.keys(v).length > 0) throw new UserError(`${cfgPath}: per-layer ${key} is not supported`);
  }
  if (cfg.bias !== undefined && cfg.bias !== 'none') throw new UserError(`${cfgPath}: bias "${String(cfg.bias)}" is not supported (attn's adapters train no biases: "none")`);
  const targets = typeof cfg.target_modules === 'string' ? [cfg.target_modules] : Array.isArray(cfg.target_modules) ? cfg.target_modules.map(String) : [];
  const dropout = typeof cfg.lora_dropout === 'number' ? cfg.lora_dropout : 0;

  const weightsPath = join(dir, ADAPTER_WEIGHTS);
  const tensors = readWeightsFile(weightsPath);
  const prefix = peftPrefix(model);
  const modules = new Map(model.namedModules());
  const found = new Map<string, { A?: TensorEntry; B?: TensorEntry }>();
  for (const [name, t] of tensors) {
    const m = /^(.*)\.lora_([AB])(?:\.default)?\.weight$/.exec(name);
    if (!m) throw new UserError(`${weightsPath}: unexpected tensor ${name} (a LoRA adapter holds only …lora_A.weight and …lora_B.weight)`);
    const family = model instanceof GPT ? 'GPT-2' : 'Llama-family';
    if (familyOf(name) !== family) {
      throw new UserError(`${weightsPath}: tensor ${name} is for a ${familyOf(name)} model, but the base is a ${family} model (its names start "${prefix}")`);
    }
    const layer = m[1]!.slice(prefix.length);
    const entry = found.get(layer) ?? {};
    entry[m[2] as 'A' | 'B'] = t;
    found.set(layer, entry);
  }
  if (found.size === 0) throw new UserError(`${weightsPath}: no LoRA tensors`);
  const layers = new Map<string, LayerAdapter>();
  for (const [layer, { A, B }] of found) {
    const base = modules.get(layer);
    // A Linear, or (serving) an int8 one or one already holding other adapters: its shape is what must fit.
    const shape = base && linearShape(base);
    if (!shape) throw new UserError(`${weightsPath}: the adapter has ${prefix}${layer}, which is not a linear layer of the base model`);
    if (!A || !B) throw new UserError(`${weightsPath}: ${prefix}${layer} has lora_${A ? 'B' : 'A'}.weight missing`);
    const [outF, inF] = shape;
    if (A.shape.join() !== [r, inF].join()) throw new UserError(`${weightsPath}: ${prefix}${layer}.lora_A.weight has shape [${A.shape}] but this base needs [${r},${inF}] (r ${r}): the adapter was made for another base`);
    if (B.shape.join() !== [outF, r].join()) throw new UserError(`${weightsPath}: ${prefix}${layer}.lora_B.weight has shape [${B.shape}] but this base needs [${outF},${r}] (r ${r}): the adapter was made for another base`);
    if (!(A.data instanceof Float32Array) || !(B.data instanceof Float32Array)) throw new UserError(`${weightsPath}: ${prefix}${layer}: LoRA tensors must be float`);
    layers.set(layer, { A: A.data, B: B.data, inFeatures: inF, outFeatures: outF });
  }
  return { r, alpha, scaling: alpha / r, dropout, targets, layers, source: dir };
}

/**
 * Read an adapter and attach it to `model` as trainable LoRA layers (the
 * base frozen, as addLoRA leaves it): for evaluating, merging or training on.
 */
export function loadAdapter(model: Module, dir: string, opts: { dropout?: number } = {}): LoRAAdapter {
  const adapter = readAdapter(dir, model);
  const names = [...adapter.layers.keys()];
  addLoRA(model, { r: adapter.r, alpha: adapter.alpha, dropout: opts.dropout ?? adapter.dropout, targets: names, rng: new Rng(0) });
  for (const [name, layer] of loraLayers(model)) {
    const w = adapter.layers.get(name);
    if (!w) continue;
    layer.lora_A.weight.data.set(w.A);
    layer.lora_B.weight.data.set(w.B);
  }
  return adapter;
}

/** The two files of a model's LoRA adapters, in PEFT's layout. */
export function adapterFiles(model: Module, opts: { baseModel?: string } = {}): Record<string, Uint8Array | string> {
  const layers = loraLayers(model);
  if (layers.length === 0) throw new UserError('the model has no LoRA adapters to save');
  const { r, alpha } = layers[0]![1];
  if (layers.some(([, l]) => l.r !== r || l.alpha !== alpha)) throw new Error('adapters of different ranks or alphas in one model cannot be saved as one PEFT adapter');
  const prefix = peftPrefix(model);
  const tensors = new Map<string, TensorEntry>();
  for (const [name, l] of layers) {
    tensors.set(`${prefix}${name}.lora_A.weight`, { dtype: 'F32', shape: l.lora_A.weight.shape, data: l.lora_A.weight.data });
    tensors.set(`${prefix}${name}.lora_B.weight`, { dtype: 'F32', shape: l.lora_B.weight.shape, data: l.lora_B.weight.data });
  }
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    r,
    lora_alpha: alpha,
    lora_dropout: layers[0]![1].lora_dropout.p,
    target_modules: [...new Set(layers.map(([n]) => n.split('.').pop()!))],
    // GPT-2's Conv1D stores its weight [in, out]: PEFT needs this flag to merge into it.
    fan_in_fan_out: model instanceof GPT,
    bias: 'none',
    base_model_name_or_path: opts.baseModel ?? null,
    inference_mode: true,
  };
  return {
    [ADAPTER_CONFIG]: JSON.stringify(config, null, 2) + '\n',
    [ADAPTER_WEIGHTS]: serializeSafetensors(tensors, { format: 'pt' }),
  };
}

/** Write the model's adapters to `dir` atomically (PEFT layout). */
export function saveAdapter(model: Module, dir: string, opts: { baseModel?: string } = {}): void {
  writeDirAtomic(dir, adapterFiles(model, opts));
}
