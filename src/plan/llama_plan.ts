import { llamaParameterCount, type LlamaSizes } from '../models/llama_config.js';
import { formatBytes, formatCount, formatFlops } from './format.js';
import { CHINCHILLA_TOKENS_PER_PARAM } from './plan.js';

/**
 * What a Llama-family model (Llama, Qwen2, Mistral) costs, from its config
 * alone, as plan.ts does for the GPT. What differs from the GPT: the SwiGLU
 * MLP has three matrices (gate, up, down) of d × I; keys and values have
 * n_kv_head heads, not n_head (grouped-query attention), which shrinks k_proj,
 * v_proj and above all the KV cache by n_head / n_kv_head; no position table
 * (rotary positions have no parameters); the head may be untied.
 *
 * Notation: L layers, d = n_embd, h = n_head, g = n_kv_head, e = head_dim,
 * I = intermediate_size, V = vocab_size, T = block_size.
 */
export type LlamaPlanConfig = LlamaSizes & { block_size: number };

export interface LlamaPlan {
  arch: 'llama';
  config: LlamaPlanConfig;
  batchSize: number;
  bytesPerValue: number;
  params: {
    /** embed_tokens: V·d. */
    tokenEmbedding: number;
    /** q_proj d·h·e, k_proj and v_proj d·g·e each, o_proj h·e·d (+ biases), per layer. */
    attentionPerLayer: number;
    /** gate_proj, up_proj, down_proj: 3·d·I (+ biases), per layer. */
    mlpPerLayer: number;
    /** input_layernorm and post_attention_layernorm: 2·d per layer. */
    normsPerLayer: number;
    layers: number;
    finalNorm: number;
    /** lm_head V·d, or 0 when tied to embed_tokens. */
    head: number;
    total: number;
    nonEmbedding: number;
    /** Weights multiplied by every token: L·(attention + MLP matrices) + V·d (the head, tied or not). */
    matmul: number;
  };
  flops: {
    /** 4·L·T·h·e: QKᵀ and A·V at full context, forward. */
    attentionForwardPerToken: number;
    forwardPerToken: number;
    trainingPerToken: number;
  };
  memory: { weights: number; gradients: number; adamw: number; statesTotal: number };
  kvCache: {
    /** 2·L·g·e values per token: one key and one value per kv head per layer. */
    bytesPerToken: number;
    bytesFullContext: number;
    bytesFullContextBatch: number;
    /** h / g: how much smaller the cache is than with one key/value head per query head. */
    shrinkVsMultiHead: number;
  };
  chinchilla: { tokens: number; flops: number };
  /** Present when a token budget was given. */
  budget?: {
    tokens: number;
    tokensPerParameter: number;
    /** 6·N·tokens. */
    flops: number;
    /** trainingPerToken · tokens. */
    flopsWithAttention: number;
  };
  formulas: Record<string, string>;
}

export const LLAMA_PLAN_FORMULAS: Record<string, string> = {
  params_layer: 'attention d·h·e + 2·d·g·e + h·e·d (+ h·e + 2·g·e with q/k/v biases); mlp 3·d·I; norms 2·d',
  params_total: 'V·d (embed_tokens) + L·layer + d (norm) + V·d (lm_head, 0 when tied)',
  flops_forward: 'per token: 2·(L·(attention + mlp matrices) + V·d) + 4·L·T·h·e (QKᵀ and A·V at full context)',
  flops_training: '3 × forward',
  kv_cache: 'per token: 2·L·g·e values (h / g times smaller than multi-head attention)',
  chinchilla: 'D ≈ 20·N tokens; compute C = 6·N·D',
};

export function planLlama(config: LlamaPlanConfig, opts: { batchSize?: number; bytesPerValue?: number; tokens?: number } = {}): LlamaPlan {
  for (const k of ['n_layer', 'n_head', 'n_kv_head', 'n_embd', 'head_dim', 'intermediate_size', 'vocab_size', 'block_size'] as const) {
    const v = config[k];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${k} must be a positive integer, got ${String(v)}`);
  }
  if (config.n_head % config.n_kv_head !== 0) throw new Error(`n_head (${config.n_head}) must be a multiple of n_kv_head (${config.n_kv_head})`);
  const B = opts.batchSize ?? 1;
  const bytes = opts.bytesPerValue ?? 4;
  const { n_layer: L, n_embd: d, n_head: h, n_kv_head: g, head_dim: e, intermediate_size: I, vocab_size: V, block_size: T } = config;

  const attnMatrices = d * h * e + 2 * d * g * e + h * e * d;
  const attentionPerLayer = attnMatrices + (config.attention_bias ? h * e + 2 * g * e : 0) + (config.attention_out_bias ? d : 0);
  const mlpPerLayer = 3 * d * I + (config.mlp_bias ? 2 * I + d : 0);
  const normsPerLayer = 2 * d;
  const layers = L * (attentionPerLayer + mlpPerLayer + normsPerLayer);
  const tokenEmbedding = V * d;
  const head = config.tie_word_embeddings ? 0 : V * d;
  const total = tokenEmbedding + layers + d + head;
  // The closed form above and the model's own count (llama_config.ts) must agree.
  if (total !== llamaParameterCount(config)) throw new Error(`internal: plan counts ${total} parameters, the config ${llamaParameterCount(config)}`);
  const matmul = L * (attnMatrices + 3 * d * I) + V * d;
  const attentionForwardPerToken = 4 * L * T * h * e;
  const forwardPerToken = 2 * matmul + attentionForwardPerToken;
  const weights = total * bytes;
  const kvPerToken = 2 * L * g * e * bytes;
  const chinchillaTokens = CHINCHILLA_TOKENS_PER_PARAM * total;
  const trainingPerToken = 3 * forwardPerToken;
  const plan: LlamaPlan = {
    arch: 'llama',
    config: { ...config },
    batchSize: B,
    bytesPerValue: bytes,
    params: { tokenEmbedding, attentionPerLayer, mlpPerLayer, normsPerLayer, layers, finalNorm: d, head, total, nonEmbedding: total - tokenEmbedding - head, matmul },
    flops: { attentionForwardPerToken, forwardPerToken, trainingPerToken },
    memory: { weights, gradients: weights, adamw: 2 * weights, statesTotal: 4 * weights },
    kvCache: { bytesPerToken: kvPerToken, bytesFullContext: kvPerToken * T, bytesFullContextBatch: kvPerToken * T * B, shrinkVsMultiHead: h / g },
    chinchilla: { tokens: chinchillaTokens, flops: 6 * total * chinchillaTokens },
    formulas: LLAMA_PLAN_FORMULAS,
  };
  if (opts.tokens !== undefined) {
    plan.budget = { tokens: opts.tokens, tokensPerParameter: opts.tokens / total, flops: 6 * total * opts.tokens, flopsWithAttention: trainingPerToken * opts.tokens };
  }
  return plan;
}

const group = (n: number): string => n.toLocaleString('en-US');

/** The plan as `attn plan` prints it for a Llama-family config. */
export function formatLlamaPlan(p: LlamaPlan): string {
  const c = p.config;
  const rows: string[] = [];
  const head = (s: string): void => void rows.push('', s);
  const row = (label: string, value: string, note = ''): void => void rows.push(`  ${label.padEnd(38)}${value.padStart(16)}${note ? '  ' + note : ''}`);
  rows.push(
    `Llama: ${c.n_layer} layers, ${c.n_embd} dims, ${c.n_head} heads / ${c.n_kv_head} kv heads of ${c.head_dim}, MLP ${c.intermediate_size}, ` +
      `context ${c.block_size}, vocab ${c.vocab_size}, ${c.tie_word_embeddings ? 'tied head' : 'own head'}; batch ${p.batchSize}, ${p.bytesPerValue} bytes per value`,
  );
  head('Parameters');
  row('token embedding (embed_tokens)', group(p.params.tokenEmbedding));
  row(`attention (${c.n_layer} × ${group(p.params.attentionPerLayer)})`, group(c.n_layer * p.params.attentionPerLayer));
  row(`SwiGLU MLP (${c.n_layer} × ${group(p.params.mlpPerLayer)})`, group(c.n_layer * p.params.mlpPerLayer));
  row(`RMSNorms (${c.n_layer} × ${group(p.params.normsPerLayer)} + ${c.n_embd})`, group(c.n_layer * p.params.normsPerLayer + p.params.finalNorm));
  row('output head (lm_head)', group(p.params.head), p.params.head ? '' : 'tied to embed_tokens');
  row('total', group(p.params.total), formatCount(p.params.total));
  row('non-embedding', group(p.params.nonEmbedding), formatCount(p.params.nonEmbedding));
  head(`FLOPs per token (full context T = ${c.block_size})`);
  row('attention, forward (4·L·T·h·e)', formatFlops(p.flops.attentionForwardPerToken));
  row('inference (2·M + 4·L·T·h·e)', formatFlops(p.flops.forwardPerToken), `M = ${formatCount(p.params.matmul)} matmul weights`);
  row('training (3 × forward)', formatFlops(p.flops.trainingPerToken));
  head('Memory for training (weights, gradients, AdamW m and v)');
  row('weights', formatBytes(p.memory.weights));
  row('weights + gradients + AdamW', formatBytes(p.memory.statesTotal), 'activations not counted');
  head('KV cache (inference)');
  row('per token (2·L·g·e values)', formatBytes(p.kvCache.bytesPerToken), `${p.kvCache.shrinkVsMultiHead}× smaller than with ${c.n_head} kv heads`);
  row(`full context (${c.block_size} tokens)`, formatBytes(p.kvCache.bytesFullContext));
  if (p.batchSize > 1) row(`full context × batch ${p.batchSize}`, formatBytes(p.kvCache.bytesFullContextBatch));
  head('Compute-optimal training (Chinchilla: ≈ 20 tokens per parameter)');
  row('tokens (20·N)', formatCount(p.chinchilla.tokens));
  row('compute (6·N·D)', formatFlops(p.chinchilla.flops));
  if (p.budget) {
    head(`Your budget: ${formatCount(p.budget.tokens)} tokens`);
    row('tokens per parameter', p.budget.tokensPerParameter.toFixed(2), p.budget.tokensPerParameter < CHINCHILLA_TOKENS_PER_PARAM ? 'under Chinchilla-optimal' : 'at or past Chinchilla-optimal');
    row('compute (6·N·tokens)', formatFlops(p.budget.flops), `${formatFlops(p.budget.flopsWithAttention)} counting attention`);
  }
  rows.push('', 'Formulas: the "formulas" field of --json.');
  return rows.join('\n') + '\n';
}
