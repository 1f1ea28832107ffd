/**
 * Teaching a base model the chat format's markers.
 *
 * A model pretrained on plain text has never seen `<|im_start|>` or
 * `<|im_end|>`, ChatML's turn markers (the default chat template, see
 * chat/template.ts). Before fine-tuning on conversations its tokenizer must be
 * able to write them, and its embedding needs a row for every new token:
 *
 * - attn's byte-level BPE: the markers become *added special tokens* (one id
 *   each, after the existing ones), as Qwen's tokenizer has them. A special
 *   token is never split, so `<|im_end|>` is one prediction — and one stop id.
 * - attn's character tokenizer has no special tokens in its format: the
 *   markers are spelled out in characters, and any character the
 *   conversations use that the pretraining text did not (a `|`, a `✓`, a
 *   digit) is appended to the vocabulary. The model then learns the markers
 *   as short words; generation stops on the `<|im_end|>` string.
 * - attn's digits tokenizer (characters with numbers whole): the markers
 *   become special tokens as with BPE, and characters the conversations use
 *   that the pretraining text did not are appended, as with characters.
 * - a Hugging Face tokenizer is left as it is: its own chat template's markers
 *   are in its vocabulary, and a byte-level one can spell ChatML's.
 *
 * New embedding rows start at the mean of the existing ones (a neutral
 * "average token"), so the first steps do not see wild logits; the output
 * head is tied to the embedding in attn's models, so it grows with it.
 */
import type { DecoderLM } from '../models/causal_lm.js';
import { GPT } from '../models/gpt.js';
import type { GPTConfig } from '../models/gpt_config.js';
import { Llama } from '../models/llama.js';
import type { LlamaConfig } from '../models/llama_config.js';
import { BPETokenizer, CharTokenizer, DigitsTokenizer, type Tokenizer } from '../tokenizers/index.js';
import { UserError } from '../util/errors.js';

/** ChatML's markers, which the default template writes. */
export const CHATML_MARKERS = ['<|im_start|>', '<|im_end|>'] as const;

export interface ChatVocabulary {
  model: DecoderLM;
  tokenizer: Tokenizer;
  /** What was added: special tokens (BPE), characters (char), or both (digits); empty when nothing was. */
  added: string[];
}

/**
 * The tokenizer (and model) able to encode `texts` — the rendered
 * conversations — growing both when needed. `markers` are the template's
 * turn markers that should be single tokens where the tokenizer can have them.
 */
export function chatVocabulary(model: DecoderLM, tokenizer: Tokenizer, texts: readonly string[], markers: readonly string[]): ChatVocabulary {
  let grown: Tokenizer = tokenizer;
  let added: string[] = [];
  if (tokenizer instanceof CharTokenizer) {
    const known = new Set(tokenizer.chars);
    const missing = new Set<string>();
    for (const t of texts) for (const c of t) if (!known.has(c)) missing.add(c);
    added = [...missing].sort();
    if (added.length) grown = new CharTokenizer([...tokenizer.chars, ...added]);
  } else if (tokenizer instanceof DigitsTokenizer) {
    const newMarkers = markers.filter((m) => !tokenizer.specialTokens.has(m));
    const known = new Set(tokenizer.vocab);
    const missing = new Set<string>();
    for (const t of texts) {
      let plain = t;
      for (const m of markers) plain = plain.split(m).join('');
      for (const c of plain) if (!known.has(c)) missing.add(c);
    }
    const chars = [...missing].sort();
    added = [...chars, ...newMarkers];
    if (added.length) grown = tokenizer.extended(chars, newMarkers);
  } else if (tokenizer instanceof BPETokenizer) {
    added = markers.filter((m) => !tokenizer.specialTokens.has(m));
    if (added.length) {
      const json = tokenizer.toJSON() as Record<string, unknown>;
      const specials: Record<string, number> = { ...(json.special_tokens as Record<string, number>) };
      added.forEach((m, i) => (specials[m] = tokenizer.vocabSize + i));
      grown = BPETokenizer.fromJSON({ ...json, special_tokens: specials }, 'chat tokenizer');
    }
  } else if (tokenizer.type === 'word') {
    throw new UserError('chat fine-tuning needs a tokenizer that can spell any reply (char, bpe or a Hugging Face one); this model has a word tokenizer');
  }
  if (grown.vocabSize > model.config.vocab_size) return { model: withVocabulary(model, grown.vocabSize), tokenizer: grown, added };
  return { model, tokenizer: grown, added };
}

/**
 * A copy of `model` with `vocab` rows in its embedding (and untied head):
 * the old rows kept, the new ones the mean of the old.
 */
export function withVocabulary(model: DecoderLM, vocab: number): DecoderLM {
  const old = model.config.vocab_size;
  let grown: DecoderLM;
  if (model instanceof GPT) grown = new GPT({ ...(model.config as GPTConfig), vocab_size: vocab }, model.rng);
  else if (model instanceof Llama) grown = new Llama({ ...(model.config as LlamaConfig), vocab_size: vocab }, model.rng);
  else throw new Error('withVocabulary: unknown decoder family');
  const source = new Map(model.namedParameters());
  for (const [name, p] of grown.namedParameters()) {
    const q = source.get(name);
    if (!q) throw new Error(`withVocabulary: ${name} is missing in the source model`);
    if (q.size === p.size) {
      p.data.set(q.data);
      continue;
    }
    // A vocabulary matrix [V, C]: keep the old rows, fill the new with their mean.
    const C = p.shape[1]!;
    if (p.shape[0] !== vocab || q.shape[0] !== old || q.shape[1] !== C) throw new Error(`withVocabulary: ${name} has shape ${q.shape.join('×')}, not [${old}, C]`);
    p.data.set(q.data);
    const meanRow = new Float32Array(C);
    for (let r = 0; r < old; r++) for (let c = 0; c < C; c++) meanRow[c]! += q.data[r * C + c]! / old;
    for (let r = old; r < vocab; r++) p.data.set(meanRow, r * C);
  }
  grown.train(model.training);
  return grown;
}
