import { BPETokenizer } from '../tokenizers/bpe.js';
import { bytesToUnicode } from '../tokenizers/bytes.js';
import { HFTokenizer } from '../tokenizers/hf/pipeline.js';
import { specialTokenName } from '../tokenizers/hf/post_processor.js';
import { tokenizerFromJSON } from '../tokenizers/index.js';
import type { Tokenizer } from '../tokenizers/tokenizer.js';
import { UserError } from '../util/errors.js';
import { ggufValue, type GGUFFile, type GGUFValue } from './gguf.js';

/**
 * A tokenizer as GGUF metadata (`tokenizer.ggml.*`) and back. llama.cpp
 * knows two kinds that the Llama family uses:
 *
 *   model "gpt2"   byte-level BPE (Llama 3, Qwen, SmolLM): tokens spelt in
 *                  GPT-2's byte alphabet, merges "left right", and
 *                  `tokenizer.ggml.pre` naming the pre-tokenizer (the regex
 *                  that cuts text into words before merging).
 *   model "llama"  SentencePiece BPE (Llama 2, TinyLlama, Mistral v0.1):
 *                  tokens with "▁" for spaces and `<0xNN>` byte tokens, and a
 *                  score per token instead of merges: the pair whose merged
 *                  token scores highest is merged first.
 *
 * Reading builds the Hugging Face tokenizer.json those models ship (and the
 * tokenizer_config.json keys: special tokens, add_bos_token, chat_template)
 * and runs it through attn's HFTokenizer, so ids equal Hugging Face's.
 * Writing goes the other way from an HFTokenizer, or from attn's own
 * byte-level BPE.
 */

type Json = Record<string, unknown>;

// llama.cpp's token types (tokenizer.ggml.token_type).
export const TOKEN_TYPE = { normal: 1, unknown: 2, control: 3, userDefined: 4, unused: 5, byte: 6 } as const;

/** Rust/Oniguruma regexes of the pre-tokenizers (as Hugging Face's tokenizer.json spells them). */
const LLAMA3_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const QWEN2_REGEX = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

const split = (regex: string): Json => ({ type: 'Split', pattern: { Regex: regex }, behavior: 'Isolated', invert: false });
const byteLevel = (useRegex: boolean): Json => ({ type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: useRegex });

/**
 * The `tokenizer.ggml.pre` names attn reads, as the tokenizer.json parts
 * Hugging Face ships for them. llama.cpp also turns on ignore_merges for
 * Llama 3 (a piece that is a whole token is that token), and Qwen's files
 * normalize to NFC first.
 */
const PRE_TOKENIZERS: Record<string, { pre: Json; ignoreMerges?: boolean; normalizer?: Json; addBos?: boolean }> = {
  'llama-bpe': { pre: { type: 'Sequence', pretokenizers: [split(LLAMA3_REGEX), byteLevel(false)] }, ignoreMerges: true, addBos: true },
  qwen2: { pre: { type: 'Sequence', pretokenizers: [split(QWEN2_REGEX), byteLevel(false)] }, normalizer: { type: 'NFC' } },
  'gpt-2': { pre: byteLevel(true) },
  smollm: { pre: { type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, byteLevel(true)] } },
};
/** Other names llama.cpp gives the same pre-tokenizers. */
const PRE_ALIASES: Record<string, string> = { llama3: 'llama-bpe', 'llama-v3': 'llama-bpe', 'deepseek-r1-qwen': 'qwen2' };

const isObject = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

// --- reading ---

function stringArray(file: GGUFFile, key: string, source: string): string[] {
  const v = ggufValue(file, key);
  if (!Array.isArray(v) || !v.every((s) => typeof s === 'string')) throw new UserError(`${source}: metadata ${key} must be an array of strings`);
  return v as string[];
}

function numberArray(file: GGUFFile, key: string, n: number, source: string): number[] | null {
  const v = ggufValue(file, key);
  if (v === undefined) return null;
  if (!Array.isArray(v) || v.length !== n) throw new UserError(`${source}: metadata ${key} must be an array of ${n} numbers, one per token`);
  return v.map(Number);
}

function optionalId(file: GGUFFile, key: string, n: number, source: string): number | undefined {
  const v = ggufValue(file, key);
  if (v === undefined) return undefined;
  const id = Number(v);
  if (!Number.isInteger(id) || id < 0 || id >= n) throw new UserError(`${source}: metadata ${key} is ${String(v)}, not a token id below ${n}`);
  return id;
}

function optionalBool(file: GGUFFile, key: string): boolean | undefined {
  const v = ggufValue(file, key);
  return v === undefined ? undefined : v === true;
}

/**
 * The tokenizer.json and tokenizer_config.json objects a GGUF file's
 * tokenizer metadata describes; null when the file has no tokenizer.
 */
export function tokenizerJSONFromGGUF(file: GGUFFile, source: string): { tokenizer: Json; config: Json } | null {
  const model = ggufValue(file, 'tokenizer.ggml.model');
  if (model === undefined) return null;
  if (model !== 'gpt2' && model !== 'llama') throw new UserError(`${source}: tokenizer.ggml.model "${String(model)}" is not supported (attn reads "gpt2" byte-level BPE and "llama" SentencePiece BPE)`);
  const tokens = stringArray(file, 'tokenizer.ggml.tokens', source);
  const n = tokens.length;
  const types = numberArray(file, 'tokenizer.ggml.token_type', n, source) ?? tokens.map(() => TOKEN_TYPE.normal);
  const ids = {
    bos: optionalId(file, 'tokenizer.ggml.bos_token_id', n, source),
    eos: optionalId(file, 'tokenizer.ggml.eos_token_id', n, source),
    unk: optionalId(file, 'tokenizer.ggml.unknown_token_id', n, source),
    pad: optionalId(file, 'tokenizer.ggml.padding_token_id', n, source),
  };

  const vocab: Json = {};
  const added: Json[] = [];
  tokens.forEach((t, id) => {
    const type = types[id]!;
    if (type === TOKEN_TYPE.unused) return;
    const special = type === TOKEN_TYPE.control || type === TOKEN_TYPE.unknown;
    // Control and user-defined tokens are matched whole in the text, before any splitting (Hugging Face's added_tokens).
    if (special || type === TOKEN_TYPE.userDefined) added.push({ id, content: t, single_word: false, lstrip: false, rstrip: false, normalized: false, special });
    // SentencePiece keeps every piece in its vocabulary; byte-level files keep added tokens out of it.
    if (model === 'llama' || !(special || type === TOKEN_TYPE.userDefined)) vocab[t] = id;
  });

  let tokenizer: Json;
  let addBos: boolean;
  if (model === 'gpt2') {
    const name = String(ggufValue(file, 'tokenizer.ggml.pre') ?? 'default');
    const pre = PRE_TOKENIZERS[PRE_ALIASES[name] ?? name];
    if (!pre) throw new UserError(`${source}: tokenizer.ggml.pre "${name}" is not supported (attn knows ${Object.keys(PRE_TOKENIZERS).join(', ')})`);
    const merges = stringArray(file, 'tokenizer.ggml.merges', source);
    tokenizer = {
      version: '1.0',
      added_tokens: added,
      normalizer: pre.normalizer ?? null,
      pre_tokenizer: pre.pre,
      post_processor: null,
      decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: pre.ignoreMerges === true, vocab, merges },
    };
    addBos = optionalBool(file, 'tokenizer.ggml.add_bos_token') ?? pre.addBos === true;
  } else {
    const scores = numberArray(file, 'tokenizer.ggml.scores', n, source);
    if (!scores) throw new UserError(`${source}: a "llama" (SentencePiece) tokenizer needs tokenizer.ggml.scores`);
    const prefixSpace = optionalBool(file, 'tokenizer.ggml.add_space_prefix') ?? true;
    const replaceSpaces = { type: 'Replace', pattern: { String: ' ' }, content: '▁' };
    tokenizer = {
      version: '1.0',
      added_tokens: added,
      normalizer: prefixSpace ? { type: 'Sequence', normalizers: [{ type: 'Prepend', prepend: '▁' }, replaceSpaces] } : replaceSpaces,
      pre_tokenizer: null,
      post_processor: null,
      decoder: {
        type: 'Sequence',
        decoders: [{ type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' }, ...(prefixSpace ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : [])],
      },
      model: {
        type: 'BPE', dropout: null, unk_token: ids.unk === undefined ? null : tokens[ids.unk], continuing_subword_prefix: null, end_of_word_suffix: null,
        fuse_unk: true, byte_fallback: tokens.includes('<0x00>'), ignore_merges: false, vocab, merges: mergesFromScores(tokens, types, scores),
      },
    };
    addBos = optionalBool(file, 'tokenizer.ggml.add_bos_token') ?? true;
  }
  // What encode adds with addSpecialTokens, as tokenizer_config.json says it for files without a post-processor.
  const config: Json = { add_bos_token: addBos, add_eos_token: optionalBool(file, 'tokenizer.ggml.add_eos_token') ?? false };
  for (const [key, id] of Object.entries(ids)) if (id !== undefined) config[`${key}_token`] = tokens[id];
  const template = ggufValue(file, 'tokenizer.chat_template');
  if (typeof template === 'string') config.chat_template = template;
  return { tokenizer, config };
}

/**
 * SentencePiece's scores as BPE merges, the way Hugging Face converts a
 * tokenizer.model (SentencePieceExtractor): every way of writing a token as
 * two tokens is a merge; merges are ordered by the merged token's score,
 * highest first (ties keep id order), and a token's own splits by the ids of
 * their left then right parts.
 */
export function mergesFromScores(tokens: readonly string[], types: readonly number[], scores: readonly number[]): string[] {
  const ids = new Map<string, number>();
  tokens.forEach((t, id) => ids.set(t, id));
  const merges: Array<{ left: number; right: number; score: number; order: number }> = [];
  tokens.forEach((t, id) => {
    if (types[id] !== TOKEN_TYPE.normal) return;
    const local: Array<{ left: number; right: number }> = [];
    const chars = Array.from(t);
    for (let i = 1; i < chars.length; i++) {
      const left = ids.get(chars.slice(0, i).join(''));
      const right = ids.get(chars.slice(i).join(''));
      if (left !== undefined && right !== undefined) local.push({ left, right });
    }
    local.sort((a, b) => a.left - b.left || a.right - b.right);
    for (const m of local) merges.push({ ...m, score: scores[id]!, order: merges.length });
  });
  merges.sort((a, b) => b.score - a.score || a.order - b.order);
  return merges.map((m) => `${tokens[m.left]} ${tokens[m.right]}`);
}

/** The tokenizer a GGUF file carries, as an attn Tokenizer whose ids are Hugging Face's; null if it has none. */
export function tokenizerFromGGUF(file: GGUFFile, source: string): Tokenizer | null {
  const json = tokenizerJSONFromGGUF(file, source);
  return json && tokenizerFromJSON(json.tokenizer, `${source} (tokenizer)`, json.config);
}

// --- writing ---

const u32 = (value: number): GGUFValue => ({ type: 'uint32', value });
const str = (value: string): GGUFValue => ({ type: 'string', value });
const strings = (value: string[]): GGUFValue => ({ type: 'array', itemType: 'string', value });

/** Which of the known pre-tokenizers a tokenizer.json's is (by its regex and steps), or null. */
function preTokenizerName(raw: Json): string | null {
  const pre = raw.pre_tokenizer;
  if (!isObject(pre)) return null;
  if (pre.type === 'ByteLevel') return pre.use_regex !== false && !pre.add_prefix_space ? 'gpt-2' : null;
  const steps = Array.isArray(pre.pretokenizers) ? (pre.pretokenizers as Json[]) : [];
  if (pre.type !== 'Sequence' || steps.length !== 2 || steps[1]?.type !== 'ByteLevel' || steps[1].add_prefix_space) return null;
  const [first, level] = steps as [Json, Json];
  if (first.type === 'Digits' && first.individual_digits === true && level.use_regex !== false) return 'smollm';
  const regex = isObject(first.pattern) ? first.pattern.Regex : undefined;
  if (first.type !== 'Split' || first.behavior !== 'Isolated' || first.invert || level.use_regex !== false) return null;
  if (regex === LLAMA3_REGEX) return 'llama-bpe';
  if (regex === QWEN2_REGEX) return 'qwen2';
  return null;
}

/** A SentencePiece-style BPE (Llama 2): byte fallback and "▁" for spaces. */
function isSentencePiece(raw: Json): boolean {
  const model = raw.model as Json;
  return model.byte_fallback === true && JSON.stringify(raw.normalizer ?? raw.pre_tokenizer ?? null).includes('▁');
}

/** Whether a SentencePiece-style tokenizer.json puts "▁" before the text (a Prepend normalizer, or Metaspace's prepend_scheme). */
function addsSpacePrefix(raw: Json): boolean {
  if (JSON.stringify(raw.normalizer ?? null).includes('"Prepend"')) return true;
  const pre = raw.pre_tokenizer;
  return isObject(pre) && pre.type === 'Metaspace' && pre.prepend_scheme !== 'never' && pre.add_prefix_space !== false;
}

interface Spelled {
  tokens: string[];
  types: number[];
  notes: string[];
}

/** Every id below vocabSize spelt, with its type; ids the tokenizer lacks (a padded vocabulary) are unused tokens. */
function spellAll(vocabSize: number, spell: (id: number) => { token: string; type: number } | undefined): Spelled {
  const tokens: string[] = [];
  const types: number[] = [];
  for (let id = 0; id < vocabSize; id++) {
    const s = spell(id);
    tokens.push(s?.token ?? `[PAD${id}]`);
    types.push(s?.type ?? TOKEN_TYPE.unused);
  }
  return { tokens, types, notes: [] };
}

/** Metadata for attn's own byte-level BPE (GPT-2's pre-splitting). */
function bpeMetadata(tokenizer: BPETokenizer, vocabSize: number, m: Map<string, GGUFValue>): string[] {
  if (tokenizer.pattern !== 'gpt2') return [`the BPE tokenizer's pre-splitting pattern "${tokenizer.pattern}" has no llama.cpp name; the file has no tokenizer`];
  const special = new Map([...tokenizer.specialTokens].map(([s, id]) => [id, s]));
  const { tokens, types } = spellAll(vocabSize, (id) => {
    const s = special.get(id);
    if (s !== undefined) return { token: s, type: TOKEN_TYPE.control };
    return id < tokenizer.vocabSize ? { token: bytesToUnicode(tokenizer.decodeBytes([id])), type: TOKEN_TYPE.normal } : undefined;
  });
  m.set('tokenizer.ggml.model', str('gpt2'));
  m.set('tokenizer.ggml.pre', str('gpt-2'));
  m.set('tokenizer.ggml.tokens', strings(tokens));
  m.set('tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: types });
  m.set('tokenizer.ggml.merges', strings(tokenizer.merges.map(([l, r]) => `${tokens[l]} ${tokens[r]}`)));
  m.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: false });
  const eot = tokenizer.specialTokens.get('<|endoftext|>');
  if (eot !== undefined) {
    m.set('tokenizer.ggml.bos_token_id', u32(eot));
    m.set('tokenizer.ggml.eos_token_id', u32(eot));
  }
  return [];
}

/** Metadata for a Hugging Face tokenizer.json (byte-level or SentencePiece BPE) and its tokenizer_config.json. */
function hfMetadata(tokenizer: HFTokenizer, vocabSize: number, m: Map<string, GGUFValue>): string[] {
  const raw = tokenizer.toJSON() as Json;
  const model = raw.model as Json;
  const sentencePiece = isSentencePiece(raw);
  const pre = sentencePiece ? null : preTokenizerName(raw);
  if (!sentencePiece && !pre) return ['the tokenizer\'s pre-tokenizer is not one llama.cpp names (attn writes llama-bpe, qwen2, gpt-2, smollm and SentencePiece BPE); the file has no tokenizer'];
  const added = new Map<number, { special: boolean }>();
  for (const t of (raw.added_tokens ?? []) as Json[]) added.set(t.id as number, { special: t.special === true });
  const unk = typeof model.unk_token === 'string' ? tokenizer.tokenToId(model.unk_token) : undefined;
  const { tokens, types } = spellAll(vocabSize, (id) => {
    const token = tokenizer.idToToken(id);
    if (token === undefined) return undefined;
    const a = added.get(id);
    let type: number = TOKEN_TYPE.normal;
    if (id === unk) type = TOKEN_TYPE.unknown;
    else if (a) type = a.special ? TOKEN_TYPE.control : TOKEN_TYPE.userDefined;
    else if (sentencePiece && /^<0x[0-9A-F]{2}>$/.test(token)) type = TOKEN_TYPE.byte;
    return { token, type };
  });
  // Merges as "left right" (tokenizer.json may hold them as pairs).
  const merges = (model.merges as unknown[]).map((x) => (typeof x === 'string' ? x : (x as string[]).join(' ')));
  if (sentencePiece) {
    // A merge's rank becomes its merged token's score (earlier merges score higher), which is
    // what SentencePiece's scores mean to llama.cpp; tokens no merge makes score lowest.
    const scores = tokens.map(() => -1e9);
    merges.forEach((pair, rank) => {
      const id = tokenizer.tokenToId(pair.replace(' ', ''));
      if (id !== undefined && scores[id] === -1e9) scores[id] = -rank;
    });
    m.set('tokenizer.ggml.model', str('llama'));
    m.set('tokenizer.ggml.tokens', strings(tokens));
    m.set('tokenizer.ggml.scores', { type: 'array', itemType: 'float32', value: scores });
    m.set('tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: types });
    m.set('tokenizer.ggml.add_space_prefix', { type: 'bool', value: addsSpacePrefix(raw) });
  } else {
    m.set('tokenizer.ggml.model', str('gpt2'));
    m.set('tokenizer.ggml.pre', str(pre!));
    m.set('tokenizer.ggml.tokens', strings(tokens));
    m.set('tokenizer.ggml.token_type', { type: 'array', itemType: 'int32', value: types });
    m.set('tokenizer.ggml.merges', strings(merges));
  }
  const config = tokenizer.config;
  const idOf = (key: string): number | undefined => {
    const name = specialTokenName(config[key]);
    return name === undefined ? undefined : tokenizer.tokenToId(name);
  };
  for (const [key, gguf] of [['bos_token', 'bos_token_id'], ['eos_token', 'eos_token_id'], ['unk_token', 'unknown_token_id'], ['pad_token', 'padding_token_id']] as const) {
    const id = idOf(key) ?? (key === 'unk_token' ? unk : undefined);
    if (id !== undefined) m.set(`tokenizer.ggml.${gguf}`, u32(id));
  }
  // What encoding with special tokens adds around a text (the post-processor's BOS, or tokenizer_config's add_bos_token).
  const around = tokenizer.encode('', { addSpecialTokens: true });
  const bos = idOf('bos_token');
  const eos = idOf('eos_token');
  m.set('tokenizer.ggml.add_bos_token', { type: 'bool', value: bos !== undefined && around[0] === bos });
  m.set('tokenizer.ggml.add_eos_token', { type: 'bool', value: eos !== undefined && around[around.length - 1] === eos });
  const template = config.chat_template;
  const notes: string[] = [];
  if (typeof template === 'string') m.set('tokenizer.chat_template', str(template));
  else if (template !== undefined) notes.push('the chat template is a list of named templates; GGUF holds one string, so none was written');
  return notes;
}

/**
 * The tokenizer.ggml.* metadata (and tokenizer.chat_template) for a
 * tokenizer, padded with unused tokens to the model's vocabSize (llama.cpp
 * needs one token per embedding row). Tokenizers llama.cpp cannot run give
 * a note and no metadata.
 */
export function tokenizerToGGUF(tokenizer: Tokenizer | null, vocabSize: number): { metadata: Map<string, GGUFValue>; notes: string[] } {
  const metadata = new Map<string, GGUFValue>();
  if (!tokenizer) return { metadata, notes: ['the model has no tokenizer; the file has none (llama.cpp needs one to run it)'] };
  if (tokenizer.vocabSize > vocabSize) throw new UserError(`the tokenizer has ${tokenizer.vocabSize} tokens but the model's vocabulary is ${vocabSize}`);
  let notes: string[];
  if (tokenizer instanceof BPETokenizer) notes = bpeMetadata(tokenizer, vocabSize, metadata);
  else if (tokenizer instanceof HFTokenizer) notes = hfMetadata(tokenizer, vocabSize, metadata);
  else notes = [`the ${tokenizer.type} tokenizer has no GGUF form; the file has no tokenizer (llama.cpp needs one to run it)`];
  return { metadata, notes };
}
