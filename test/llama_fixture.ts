import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors, type TensorEntry } from '../src/io/safetensors.js';
import { Llama } from '../src/models/llama.js';
import { parseLlamaConfig, type LlamaConfig, type LlamaConfigInput } from '../src/models/llama_config.js';
import { Rng } from '../src/util/rng.js';

/**
 * Tiny Llama-family model directories in Hugging Face's layout, for the
 * commands that load them (serve, chat, quantize, train --init, pull).
 */

/** Printable ASCII and newline, then ChatML's tokens and an end of text. */
export const CHARS = [...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)), '\n'];
export const IM_START = CHARS.length;
export const IM_END = CHARS.length + 1;
export const END_OF_TEXT = CHARS.length + 2;
export const CHAT_VOCAB = CHARS.length + 3;

/** A Qwen-style ChatML template (system prompt by default), as tokenizer_config.json ships it. */
export const CHATML_TEMPLATE =
  "{%- if messages[0]['role'] != 'system' %}{{- '<|im_start|>system\\nYou are helpful.<|im_end|>\\n' }}{%- endif %}" +
  "{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{%- endfor %}" +
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}";

/**
 * A character-level Hugging Face tokenizer.json (a BPE without merges: every
 * character is a token) with ChatML's special tokens, and its
 * tokenizer_config.json naming the template and the end-of-turn token.
 */
export function chatTokenizerFiles(chatTemplate: string | null = CHATML_TEMPLATE): Record<string, string> {
  const vocab: Record<string, number> = Object.fromEntries(CHARS.map((c, i) => [c, i]));
  const specials = ['<|im_start|>', '<|im_end|>', '<|endoftext|>'];
  specials.forEach((t, i) => (vocab[t] = CHARS.length + i));
  const added = specials.map((content, i) => ({ id: CHARS.length + i, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  const tokenizer = { version: '1.0', added_tokens: added, normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null, model: { type: 'BPE', vocab, merges: [] } };
  const config: Record<string, unknown> = { eos_token: '<|im_end|>', pad_token: '<|endoftext|>', bos_token: null, add_bos_token: false, tokenizer_class: 'Qwen2Tokenizer' };
  if (chatTemplate !== null) config.chat_template = chatTemplate;
  return { 'tokenizer.json': JSON.stringify(tokenizer), 'tokenizer_config.json': JSON.stringify(config, null, 2) };
}

/** config.json as Hugging Face writes it for this LlamaConfig. */
export function hfLlamaConfig(c: LlamaConfig, architecture = 'LlamaForCausalLM'): Record<string, unknown> {
  return {
    architectures: [architecture],
    model_type: architecture === 'Qwen2ForCausalLM' ? 'qwen2' : architecture === 'MistralForCausalLM' ? 'mistral' : 'llama',
    vocab_size: c.vocab_size, hidden_size: c.n_embd, intermediate_size: c.intermediate_size,
    num_hidden_layers: c.n_layer, num_attention_heads: c.n_head, num_key_value_heads: c.n_kv_head, head_dim: c.head_dim,
    hidden_act: 'silu', max_position_embeddings: c.block_size, rms_norm_eps: c.rms_norm_eps, rope_theta: c.rope_theta,
    tie_word_embeddings: c.tie_word_embeddings, attention_bias: c.attention_bias, torch_dtype: 'float32',
  };
}

/** The model's tensors by their (Hugging Face) parameter names. */
export function llamaTensors(model: Llama): Map<string, TensorEntry> {
  return new Map(model.namedParameters().map(([n, p]) => [n, { dtype: 'F32', shape: p.shape, data: p.data }]));
}

/**
 * Write `model` as a Hugging Face directory: config.json, the weights in
 * model.safetensors or in `shards` files with model.safetensors.index.json,
 * and `extra` files (the tokenizer's).
 */
export function writeHFLlamaDir(dir: string, model: Llama, extra: Record<string, string> = {}, shards = 1): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(hfLlamaConfig(model.config), null, 2));
  const tensors = llamaTensors(model);
  if (shards === 1) writeSafetensors(join(dir, 'model.safetensors'), tensors);
  else {
    const names = [...tensors.keys()];
    const per = Math.ceil(names.length / shards);
    const weight_map: Record<string, string> = {};
    for (let s = 0; s < shards; s++) {
      const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
      const part = names.slice(s * per, (s + 1) * per);
      writeSafetensors(join(dir, file), new Map(part.map((n) => [n, tensors.get(n)!])));
      for (const n of part) weight_map[n] = file;
    }
    writeFileSync(join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map }, null, 2));
  }
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, name), text);
}

/** A small random grouped-query Llama (4 query heads, 2 key/value heads). */
export function tinyLlama(overrides: Partial<LlamaConfigInput> = {}, seed = 5): Llama {
  const config = parseLlamaConfig({ n_layer: 2, n_head: 4, n_kv_head: 2, n_embd: 32, head_dim: 8, intermediate_size: 64, vocab_size: CHAT_VOCAB, block_size: 128, tie_word_embeddings: true, ...overrides });
  return new Llama(config, new Rng(seed)).eval();
}

/**
 * A Llama that answers by rote: attention and MLP output nothing (o_proj and
 * down_proj are zero), so the last position's state is its token's embedding;
 * the embeddings are one-hot and the untied head maps token i to `next(i)`.
 * With greedy decoding it continues "\n" with `reply` and then <|im_end|> —
 * a model whose every output a test can predict.
 */
export function scriptedLlama(reply: string, blockSize = 128): Llama {
  const V = CHAT_VOCAB;
  const C = 128; // ≥ V: room for one-hot embeddings
  const model = tinyLlama({ n_layer: 1, n_embd: C, n_head: 4, n_kv_head: 2, head_dim: 32, block_size: blockSize, tie_word_embeddings: false });
  const next = new Int32Array(V).fill(CHARS.indexOf('.'));
  const script = ['\n', ...reply].map((ch) => CHARS.indexOf(ch));
  for (let i = 0; i < script.length; i++) next[script[i]!] = i + 1 < script.length ? script[i + 1]! : IM_END;
  for (const [name, p] of model.namedParameters()) {
    if (/o_proj|down_proj/.test(name)) p.data.fill(0);
  }
  const embed = model.model.embed_tokens.weight.data;
  embed.fill(0);
  for (let i = 0; i < V; i++) embed[i * C + i] = 1;
  const head = (model.lm_head as { weight: { data: Float32Array } }).weight.data;
  head.fill(0);
  for (let i = 0; i < V; i++) head[next[i]! * C + i] = 1;
  return model;
}
