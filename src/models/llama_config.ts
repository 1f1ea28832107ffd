import { z } from 'zod';
import { ROPE_SCALING_TYPES, type RopeScaling } from '../tensor/ops/rope.js';
import { UserError } from '../util/errors.js';
import { parseConfig } from '../util/validate.js';

/**
 * Upper bounds checked before anything is allocated, so that a corrupt or
 * hostile config.json fails with a message instead of an out-of-memory
 * crash. Generous: the largest open Llama-family models fit.
 */
export const LLAMA_LIMITS = { layers: 1024, width: 65536, heads: 1024, headDim: 1024, intermediate: 262144, vocab: 1 << 22, context: 1 << 22, parameters: 2e10 };

const RopeScalingSchema = z
  .object({
    rope_type: z.enum(ROPE_SCALING_TYPES),
    factor: z.number().positive(),
    original_max_position_embeddings: z.number().int().positive().optional(),
    max_position_embeddings: z.number().int().positive().optional(),
    low_freq_factor: z.number().positive().optional(),
    high_freq_factor: z.number().positive().optional(),
    beta_fast: z.number().positive().optional(),
    beta_slow: z.number().positive().optional(),
    mscale: z.number().optional(),
    mscale_all_dim: z.number().optional(),
    attention_factor: z.number().positive().optional(),
    truncate: z.boolean().optional(),
  })
  .refine((s) => s.rope_type !== 'llama3' || (s.low_freq_factor ?? 1) < (s.high_freq_factor ?? 4), { message: 'llama3 rope_scaling needs low_freq_factor < high_freq_factor' });

/**
 * Every size of a Llama-family decoder (Llama, Qwen2, Mistral), as data. The
 * names follow attn's GPT config where the concept is the same (n_layer,
 * n_embd, block_size) and Hugging Face's where it is new.
 */
export const LlamaConfigSchema = z
  .object({
    n_layer: z.number().int().positive().max(LLAMA_LIMITS.layers),
    n_head: z.number().int().positive().max(LLAMA_LIMITS.heads),
    /** Key/value heads: n_head (multi-head), fewer (grouped-query: each serves n_head / n_kv_head query heads), 1 (multi-query). */
    n_kv_head: z.number().int().positive().max(LLAMA_LIMITS.heads),
    n_embd: z.number().int().positive().max(LLAMA_LIMITS.width),
    /** Channels per head; n_head·head_dim need not equal n_embd (q_proj maps n_embd → n_head·head_dim). */
    head_dim: z.number().int().positive().max(LLAMA_LIMITS.headDim),
    /** Width of the SwiGLU MLP's hidden layer. */
    intermediate_size: z.number().int().positive().max(LLAMA_LIMITS.intermediate),
    vocab_size: z.number().int().positive().max(LLAMA_LIMITS.vocab),
    /** Longest context (Hugging Face's max_position_embeddings). */
    block_size: z.number().int().positive().max(LLAMA_LIMITS.context),
    rms_norm_eps: z.number().positive().default(1e-6),
    /** θ of the rotary frequencies θ^(−2i/head_dim). */
    rope_theta: z.number().positive().default(10000),
    rope_scaling: RopeScalingSchema.nullable().default(null),
    /** Biases on q_proj, k_proj and v_proj (Qwen2 has them). */
    attention_bias: z.boolean().default(false),
    /** A bias on o_proj (Llama with attention_bias: true; not Qwen2). */
    attention_out_bias: z.boolean().default(false),
    /** Biases on gate_proj, up_proj and down_proj (Llama's mlp_bias). */
    mlp_bias: z.boolean().default(false),
    /** The output head reuses embed_tokens (no lm_head tensor). */
    tie_word_embeddings: z.boolean().default(false),
    dropout: z.number().min(0).lt(1).default(0),
  })
  .refine((c) => c.n_head % c.n_kv_head === 0, { message: 'n_head must be a multiple of n_kv_head (each key/value head serves a whole group of query heads)' })
  .refine((c) => c.head_dim % 2 === 0, { message: 'head_dim must be even (rotary embedding rotates channel pairs)' })
  .refine((c) => llamaParameterCount(c) <= LLAMA_LIMITS.parameters, { message: `more than ${LLAMA_LIMITS.parameters} parameters: not a model attn can hold in memory` });

export type LlamaConfig = z.infer<typeof LlamaConfigSchema>;
export type LlamaConfigInput = z.input<typeof LlamaConfigSchema>;

/** Validate a config, turning zod's report into one readable line. */
export function parseLlamaConfig(raw: unknown, source = 'config'): LlamaConfig {
  return parseConfig(LlamaConfigSchema, raw, source);
}

/** What a parameter count needs from a config. */
export interface LlamaSizes {
  n_layer: number;
  n_head: number;
  n_kv_head: number;
  n_embd: number;
  head_dim: number;
  intermediate_size: number;
  vocab_size: number;
  attention_bias?: boolean;
  attention_out_bias?: boolean;
  mlp_bias?: boolean;
  tie_word_embeddings?: boolean;
}

/** Parameters of a Llama-family model, counted from its sizes (attn plan, and the sanity limit above). */
export function llamaParameterCount(c: LlamaSizes): number {
  const C = c.n_embd;
  const q = c.n_head * c.head_dim;
  const kv = c.n_kv_head * c.head_dim;
  const attn = C * q + 2 * C * kv + q * C + (c.attention_bias ? q + 2 * kv : 0) + (c.attention_out_bias ? C : 0);
  const mlp = 3 * C * c.intermediate_size + (c.mlp_bias ? 2 * c.intermediate_size + C : 0);
  const layer = attn + mlp + 2 * C; // + two RMSNorm weights
  const embed = c.vocab_size * C;
  return embed + c.n_layer * layer + C + (c.tie_word_embeddings ? 0 : embed);
}

/** Hugging Face classes attn maps onto LlamaConfig, by architectures[0] and by model_type. */
export const HF_LLAMA_ARCHITECTURES: Record<string, string> = {
  LlamaForCausalLM: 'llama',
  Qwen2ForCausalLM: 'qwen2',
  MistralForCausalLM: 'mistral',
};

/** The family of a Hugging Face config.json ("llama", "qwen2", "mistral"), or null when it is not one of them. */
export function hfLlamaFamily(hf: Record<string, unknown>): string | null {
  const arch = Array.isArray(hf.architectures) ? String(hf.architectures[0]) : undefined;
  if (arch && HF_LLAMA_ARCHITECTURES[arch]) return HF_LLAMA_ARCHITECTURES[arch]!;
  const type = String(hf.model_type);
  return Object.values(HF_LLAMA_ARCHITECTURES).includes(type) ? type : null;
}

/** Hugging Face's rope_scaling with its key spellings normalised ("type" → "rope_type"); null for none or "default". */
function ropeScalingFromHF(hf: Record<string, unknown>, source: string): RopeScaling | null {
  const raw = hf.rope_scaling as Record<string, unknown> | null | undefined;
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== 'object') throw new UserError(`${source}: rope_scaling must be an object or null`);
  const type = raw.rope_type ?? raw.type;
  if (type === 'default') return null;
  if (!(ROPE_SCALING_TYPES as readonly unknown[]).includes(type)) {
    throw new UserError(`${source}: rope_scaling type "${String(type)}" is not supported (attn knows ${ROPE_SCALING_TYPES.join(', ')})`);
  }
  const { type: _t, ...rest } = raw;
  return { ...rest, rope_type: type, max_position_embeddings: hf.max_position_embeddings } as RopeScaling;
}

/**
 * Map a Hugging Face config.json of a LlamaForCausalLM, Qwen2ForCausalLM or
 * MistralForCausalLM onto LlamaConfig, with Hugging Face's defaults for the
 * keys a file leaves out. Anything attn would compute differently is a UserError.
 */
export function llamaConfigFromHF(hf: Record<string, unknown>, source: string): LlamaConfig {
  const family = hfLlamaFamily(hf);
  if (!family) {
    const arch = (Array.isArray(hf.architectures) ? hf.architectures[0] : undefined) ?? hf.model_type ?? 'unknown';
    throw new UserError(`${source}: architecture "${String(arch)}" is not supported (attn knows ${Object.keys(HF_LLAMA_ARCHITECTURES).join(', ')} and gpt2)`);
  }
  for (const key of ['num_hidden_layers', 'num_attention_heads', 'hidden_size', 'intermediate_size', 'vocab_size']) {
    if (typeof hf[key] !== 'number') throw new UserError(`${source}: ${key} is ${hf[key] === undefined ? 'missing' : `not a number (${JSON.stringify(hf[key])})`}`);
  }
  const act = hf.hidden_act ?? 'silu';
  if (act !== 'silu') throw new UserError(`${source}: hidden_act "${String(act)}" is not supported (attn's Llama MLP uses silu)`);
  const heads = hf.num_attention_heads as number;
  const width = hf.hidden_size as number;
  // Mistral (and Qwen2 with use_sliding_window) attend only to the last sliding_window positions;
  // capping the context there keeps attn's full attention exact.
  const sliding = family === 'mistral' || hf.use_sliding_window === true ? (hf.sliding_window as number | null | undefined) : undefined;
  const maxPos = (hf.max_position_embeddings as number | undefined) ?? 2048;
  const block = typeof sliding === 'number' && sliding > 0 ? Math.min(maxPos, sliding) : maxPos;
  return parseLlamaConfig(
    {
      n_layer: hf.num_hidden_layers,
      n_head: heads,
      n_kv_head: hf.num_key_value_heads ?? heads,
      n_embd: width,
      head_dim: hf.head_dim ?? (Number.isInteger(width / heads) ? width / heads : undefined),
      intermediate_size: hf.intermediate_size,
      vocab_size: hf.vocab_size,
      block_size: block,
      rms_norm_eps: hf.rms_norm_eps ?? 1e-6,
      rope_theta: hf.rope_theta ?? 10000,
      rope_scaling: ropeScalingFromHF(hf, source),
      // Qwen2 always has q/k/v biases and none on o_proj; Llama's attention_bias covers all four.
      attention_bias: family === 'qwen2' ? true : hf.attention_bias === true,
      attention_out_bias: family === 'llama' && hf.attention_bias === true,
      mlp_bias: family === 'llama' && hf.mlp_bias === true,
      tie_word_embeddings: hf.tie_word_embeddings === true,
      dropout: 0,
    },
    source,
  );
}
