import type { GPTConfig } from '../models/gpt_config.js';

/**
 * What a GPT costs before you train it: parameters by component, FLOPs per
 * token, memory, KV cache, and the Chinchilla-optimal data budget — all from
 * the config alone, by closed-form counts (no model is built). Every formula
 * is written out in `formulas` so the numbers can be checked by hand.
 *
 * Notation: L = n_layer, h = n_head, d = n_embd, T = block_size (the context),
 * V = vocab_size, b = 1 with biases else 0, B = batch size.
 */

/** The sizes a plan needs (a GPTConfig has them all). */
export type PlanConfig = Pick<GPTConfig, 'n_layer' | 'n_head' | 'n_embd' | 'block_size' | 'vocab_size' | 'bias'> & { dropout?: number; position_encoding?: GPTConfig['position_encoding'] };

export interface PlanOptions {
  /** Sequences per training step, for activation memory (default 1). */
  batchSize?: number;
  /** A training budget in tokens: adds its compute to the plan. */
  tokens?: number;
  /** Bytes per number for weights, gradients, optimizer state, activations and the KV cache (default 4: fp32). */
  bytesPerValue?: number;
}

export interface BlockParams {
  /** ln_1 and ln_2: weight (and bias) of d each. */
  layernorms: number;
  /** c_attn (d → 3d) and c_proj (d → d): 4d² (+ 4d biases). */
  attention: number;
  /** c_fc (d → 4d) and c_proj (4d → d): 8d² (+ 5d biases). */
  mlp: number;
  total: number;
}

export interface ModelPlan {
  config: PlanConfig;
  batchSize: number;
  bytesPerValue: number;
  params: {
    /** wte: V·d. It is also the output head (weight tying), which adds no parameters. */
    tokenEmbedding: number;
    /** wpe: T·d. */
    positionEmbedding: number;
    /** One block's parameters (all blocks have the same shape). */
    perBlock: BlockParams;
    /** All L blocks together. */
    blocks: BlockParams;
    /** ln_f: d (+ d bias). */
    finalLayerNorm: number;
    /** Tied to wte: always 0. */
    head: number;
    total: number;
    /** total − tokenEmbedding − positionEmbedding (Kaplan et al.'s N). */
    nonEmbedding: number;
    /** Weights that take part in a matrix multiply for every token: L·12d² + V·d (the tied head counts here once). */
    matmul: number;
  };
  flops: {
    /** Forward attention FLOPs per token at full context, all layers: 4·L·T·d (QKᵀ and A·V, 2·T·d each). */
    attentionForwardPerToken: number;
    /** Forward pass per token at full context: 2·matmul + 4·L·T·d. */
    forwardPerToken: number;
    /** Inference = one forward pass per generated token, with a full context (a KV cache avoids re-running the prompt). */
    inferencePerToken: number;
    /** Training = forward + backward (backward ≈ 2× forward): 6·matmul + 12·L·T·d. */
    trainingPerToken: number;
    /** The plain rules of thumb with N = all parameters: 2N and 6N, without attention. */
    inferencePerToken2N: number;
    trainingPerToken6N: number;
  };
  memory: {
    /** N values each. */
    weights: number;
    gradients: number;
    /** AdamW keeps two moments (m and v) per parameter: 2N values. */
    adamw: number;
    /** Saved for the backward pass at batchSize × block_size tokens, attention weights materialised (T×T per head). */
    activations: number;
    /** The same with a fused (flash-style) attention kernel that saves one log-sum-exp per row instead of the T×T weights. */
    activationsFusedAttention: number;
    /** Per token, per layer, in bytes: the term the totals are built from. */
    activationsPerTokenPerLayer: number;
    /** weights + gradients + adamw + activations. */
    trainingTotal: number;
  };
  kvCache: {
    /** Keys and values of one token in every layer: 2·L·d values. */
    bytesPerToken: number;
    /** One sequence at full context: T tokens. */
    bytesFullContext: number;
    /** batchSize sequences at full context. */
    bytesFullContextBatch: number;
  };
  chinchilla: {
    /** ≈ 20 training tokens per parameter (Hoffmann et al. 2022), N = all parameters. */
    tokens: number;
    /** 6·N·D. */
    flops: number;
    /** trainingPerToken · D: the same budget counting attention. */
    flopsWithAttention: number;
  };
  /** Present when a token budget was given. */
  budget?: {
    tokens: number;
    tokensPerParameter: number;
    /** 6·N·tokens. */
    flops: number;
    /** trainingPerToken · tokens. */
    flopsWithAttention: number;
  };
  /** The formulas behind the numbers, in words, for people and for --json readers. */
  formulas: Record<string, string>;
}

export const CHINCHILLA_TOKENS_PER_PARAM = 20;

export const PLAN_FORMULAS: Record<string, string> = {
  params_block: 'per block: layernorms 2·(d + b·d); attention 4d² + 4b·d; mlp 8d² + 5b·d',
  params_total: 'V·d (wte, also the tied head) + T·d (wpe) + L·block + (d + b·d) (ln_f)',
  flops_forward: 'per token: 2·(L·12d² + V·d) for the matrix multiplies + 4·L·T·d for attention (QKᵀ and A·V, 2·T·d each, full context T; Kaplan/Chinchilla convention: biases, layernorms, softmax and the position lookup are ignored)',
  flops_training: 'per token: 3 × forward (backward ≈ 2 × forward) = 6·(L·12d² + V·d) + 12·L·T·d',
  memory_states: 'weights N, gradients N, AdamW 2N (m and v) values, × bytes per value',
  activations: 'per token per layer, values (Korthikanti et al. 2022, "Reducing Activation Recomputation", without dropout masks, in fp32): 16·d (ln_1 in 1, c_attn in 1, q k v 3, attention out 1, ln_2 in 1, c_fc in 1, GELU in 4, GELU out 4) + h·T (softmax weights; fused attention keeps h log-sum-exps instead) + 3·d masks when dropout > 0; plus per token 2·d (ln_f in/out) + 2·V (logits and their softmax for the cross-entropy); × B·T tokens × bytes per value',
  kv_cache: 'per token: 2·L·d values (a key and a value vector per layer); full context: × T',
  chinchilla: 'D ≈ 20·N tokens; compute C = 6·N·D',
};

/** Plan a GPT from its sizes. Throws on sizes that cannot make a model (the message is one line). */
export function planModel(config: PlanConfig, opts: PlanOptions = {}): ModelPlan {
  checkConfig(config);
  const B = opts.batchSize ?? 1;
  const bytes = opts.bytesPerValue ?? 4;
  if (!Number.isInteger(B) || B < 1) throw new Error(`batch size must be a positive integer, got ${B}`);
  if (!(bytes > 0)) throw new Error(`bytes per value must be positive, got ${bytes}`);
  if (opts.tokens !== undefined && !(Number.isFinite(opts.tokens) && opts.tokens > 0)) throw new Error(`tokens must be a positive number, got ${opts.tokens}`);

  const { n_layer: L, n_head: h, n_embd: d, block_size: T, vocab_size: V } = config;
  const b = config.bias ? 1 : 0;
  const dropout = config.dropout ?? 0;

  const perBlock: BlockParams = {
    layernorms: 2 * (d + b * d),
    attention: 4 * d * d + 4 * b * d,
    mlp: 8 * d * d + 5 * b * d,
    total: 0,
  };
  perBlock.total = perBlock.layernorms + perBlock.attention + perBlock.mlp;
  const blocks: BlockParams = {
    layernorms: L * perBlock.layernorms,
    attention: L * perBlock.attention,
    mlp: L * perBlock.mlp,
    total: L * perBlock.total,
  };
  const tokenEmbedding = V * d;
  const positionEmbedding = config.position_encoding === 'rope' ? 0 : T * d; // RoPE has no position table
  const finalLayerNorm = d + b * d;
  const total = tokenEmbedding + positionEmbedding + blocks.total + finalLayerNorm;
  const matmul = L * 12 * d * d + V * d;

  const attentionForwardPerToken = 4 * L * T * d;
  const forwardPerToken = 2 * matmul + attentionForwardPerToken;

  const perTokenPerLayerValues = 16 * d + h * T + (dropout > 0 ? 3 * d : 0);
  const fusedPerTokenPerLayerValues = 16 * d + h + (dropout > 0 ? 3 * d : 0);
  const outsideLayersValues = 2 * d + 2 * V;
  const tokens = B * T;
  const activations = tokens * (L * perTokenPerLayerValues + outsideLayersValues) * bytes;
  const activationsFusedAttention = tokens * (L * fusedPerTokenPerLayerValues + outsideLayersValues) * bytes;

  const weights = total * bytes;
  const kvPerToken = 2 * L * d * bytes;
  const trainingPerToken = 3 * forwardPerToken;
  const chinchillaTokens = CHINCHILLA_TOKENS_PER_PARAM * total;

  const plan: ModelPlan = {
    config: { ...config },
    batchSize: B,
    bytesPerValue: bytes,
    params: { tokenEmbedding, positionEmbedding, perBlock, blocks, finalLayerNorm, head: 0, total, nonEmbedding: total - tokenEmbedding - positionEmbedding, matmul },
    flops: {
      attentionForwardPerToken,
      forwardPerToken,
      inferencePerToken: forwardPerToken,
      trainingPerToken,
      inferencePerToken2N: 2 * total,
      trainingPerToken6N: 6 * total,
    },
    memory: {
      weights,
      gradients: weights,
      adamw: 2 * weights,
      activations,
      activationsFusedAttention,
      activationsPerTokenPerLayer: perTokenPerLayerValues * bytes,
      trainingTotal: 4 * weights + activations,
    },
    kvCache: { bytesPerToken: kvPerToken, bytesFullContext: kvPerToken * T, bytesFullContextBatch: kvPerToken * T * B },
    chinchilla: { tokens: chinchillaTokens, flops: 6 * total * chinchillaTokens, flopsWithAttention: trainingPerToken * chinchillaTokens },
    formulas: PLAN_FORMULAS,
  };
  if (opts.tokens !== undefined) {
    plan.budget = {
      tokens: opts.tokens,
      tokensPerParameter: opts.tokens / total,
      flops: 6 * total * opts.tokens,
      flopsWithAttention: trainingPerToken * opts.tokens,
    };
  }
  return plan;
}

function checkConfig(c: PlanConfig): void {
  for (const k of ['n_layer', 'n_head', 'n_embd', 'block_size', 'vocab_size'] as const) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${String(v)}`);
  }
  if (c.n_embd % c.n_head !== 0) throw new Error(`n_embd (${c.n_embd}) must be divisible by n_head (${c.n_head})`);
}
