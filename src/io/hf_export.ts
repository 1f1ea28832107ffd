import type { GPT } from '../models/gpt.js';
import { BPETokenizer } from '../tokenizers/bpe.js';
import { bytesToUnicode } from '../tokenizers/bytes.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { isConv1DWeight, transpose2d } from './hf_gpt2.js';
import { ATTN_TOKENIZER_FILE } from './model_dir.js';
import { serializeSafetensors, type TensorEntry } from './safetensors.js';
import { UserError } from '../util/errors.js';

/**
 * A Hugging Face GPT-2 directory for a model trained (or loaded) in attn:
 * what `GPT2LMHeadModel.from_pretrained(dir)` and `GPT2TokenizerFast` read.
 * Differences from our layout are undone here: Conv1D layers store weights
 * [in, out] (we store Linear's [out, in]), GPT-2 always has biases (a model
 * trained without them gets zeros, which computes the same), and the
 * safetensors metadata must say format "pt".
 */
export function hfFiles(model: GPT, tokenizer: Tokenizer | null): { files: Record<string, Uint8Array | string>; notes: string[] } {
  if (model.config.position_encoding === 'rope') throw new UserError("this model uses RoPE; GPT-2's format has learned position vectors only, so it cannot be exported to it");
  const notes: string[] = [];
  const files: Record<string, Uint8Array | string> = {
    'config.json': JSON.stringify(hfConfig(model, tokenizer), null, 2) + '\n',
    'model.safetensors': serializeSafetensors(hfTensors(model), { format: 'pt' }),
  };
  if (tokenizer) {
    const gpt2 = gpt2TokenizerFiles(tokenizer, model.config.block_size);
    if (gpt2) Object.assign(files, gpt2);
    else {
      files[ATTN_TOKENIZER_FILE] = JSON.stringify(tokenizer.toJSON()) + '\n';
      notes.push(`the ${tokenizer.type} tokenizer has no GPT-2 file form; it is saved as ${ATTN_TOKENIZER_FILE} (attn reads it; transformers' GPT-2 tokenizer cannot)`);
    }
  } else notes.push('the model has no tokenizer; none was written');
  return { files, notes };
}

function endOfText(tokenizer: Tokenizer | null): number | undefined {
  return tokenizer?.specialTokens.get('<|endoftext|>');
}

/** config.json with GPT-2's keys (transformers' GPT2Config). */
export function hfConfig(model: GPT, tokenizer: Tokenizer | null): Record<string, unknown> {
  const c = model.config;
  const eot = endOfText(tokenizer) ?? c.vocab_size - 1;
  return {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    vocab_size: c.vocab_size,
    n_positions: c.block_size,
    n_ctx: c.block_size,
    n_embd: c.n_embd,
    n_layer: c.n_layer,
    n_head: c.n_head,
    n_inner: null,
    activation_function: 'gelu_new',
    resid_pdrop: c.dropout,
    embd_pdrop: c.dropout,
    attn_pdrop: c.dropout,
    layer_norm_epsilon: c.layer_norm_epsilon,
    initializer_range: 0.02,
    scale_attn_weights: true,
    use_cache: true,
    tie_word_embeddings: true,
    bos_token_id: eot,
    eos_token_id: eot,
    torch_dtype: 'float32',
  };
}

/** Our parameters under GPT-2's names and layouts, with zero biases where we have none. */
export function hfTensors(model: GPT): Map<string, TensorEntry> {
  const out = new Map<string, TensorEntry>();
  const params = new Map(model.namedParameters());
  for (const [name, p] of params) {
    if (isConv1DWeight(name)) {
      const [outF, inF] = p.shape as [number, number];
      out.set(name, { dtype: 'F32', shape: [inF, outF], data: transpose2d(p.data, outF, inF) });
    } else out.set(name, { dtype: 'F32', shape: [...p.shape], data: p.data });
    // Without biases (nanoGPT's recipe) GPT-2 still expects them: zeros change nothing.
    const bias = name.replace(/\.weight$/, '.bias');
    if (name.endsWith('.weight') && !name.startsWith('wte') && !name.startsWith('wpe') && !params.has(bias)) {
      const width = p.shape[0]!; // a Linear's out features, a LayerNorm's width
      out.set(bias, { dtype: 'F32', shape: [width], data: new Float32Array(width) });
    }
  }
  return out;
}

/**
 * vocab.json + merges.txt, GPT-2's tokenizer files, for a byte-level BPE with
 * GPT-2's pre-splitting; null for tokenizers those files cannot express.
 * `modelMaxLength` is the model's context (GPT-2's 1024 by default).
 */
export function gpt2TokenizerFiles(tokenizer: Tokenizer, modelMaxLength = 1024): Record<string, string> | null {
  if (!(tokenizer instanceof BPETokenizer) || tokenizer.pattern !== 'gpt2') return null;
  const spell = (id: number) => bytesToUnicode(tokenizer.decodeBytes([id]));
  const vocab: Record<string, number> = {};
  for (let b = 0; b < 256; b++) vocab[spell(tokenizer.byteIds[b]!)] = tokenizer.byteIds[b]!;
  for (const [, , id] of tokenizer.merges) vocab[spell(id)] = id;
  for (const [s, id] of tokenizer.specialTokens) vocab[s] = id;
  const merges = ['#version: 0.2', ...tokenizer.merges.map(([l, r]) => `${spell(l)} ${spell(r)}`)].join('\n') + '\n';
  const eot = endOfText(tokenizer);
  const special = eot !== undefined ? { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>' } : {};
  return {
    'vocab.json': JSON.stringify(vocab) + '\n',
    'merges.txt': merges,
    'tokenizer_config.json': JSON.stringify({ tokenizer_class: 'GPT2Tokenizer', model_max_length: modelMaxLength, add_prefix_space: false, ...special }, null, 2) + '\n',
  };
}
