import { UserError } from '../util/errors.js';
import type { BPETokenizer } from './bpe.js';
import { bpeFromVocabAndMerges } from './gpt2_files.js';
import { CONTRACTIONS_ANY_CASE, PATTERNS } from './pretokenize.js';

type Json = Record<string, unknown>;

const isObject = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

/**
 * A Hugging Face tokenizer.json holding a byte-level BPE (GPT-2, and models
 * built like it): model.vocab, model.merges (as "a b" strings or [a, b]
 * pairs), added_tokens, and a ByteLevel pre-tokenizer — alone (GPT-2's
 * regex) or after a Split with its own regex. Anything else (WordPiece,
 * SentencePiece-style BPE, normalizers) is refused with a clear message
 * rather than encoded wrongly.
 */
export function bpeFromHFTokenizer(raw: Json, source: string): BPETokenizer {
  const bad = (what: string): never => {
    throw new UserError(`${source}: ${what}`);
  };
  const model = raw.model;
  if (!isObject(model) || model.type !== 'BPE') bad(`model type ${JSON.stringify(isObject(model) ? model.type : undefined)} is not supported (attn loads byte-level BPE tokenizers)`);
  const m = model as Json;
  if (!isObject(m.vocab)) bad('model.vocab must be an object of token → id');
  if (!Array.isArray(m.merges)) bad('model.merges must be an array');
  for (const key of ['continuing_subword_prefix', 'end_of_word_suffix']) if (m[key]) bad(`model.${key} is not supported for byte-level BPE`);
  if (m.ignore_merges) bad('model.ignore_merges is not supported');
  if (raw.normalizer) bad('normalizers are not supported (byte-level BPE has none)');
  const merges = (m.merges as unknown[]).map((x, i): [string, string] => {
    const pair = typeof x === 'string' ? x.split(' ') : x;
    if (!Array.isArray(pair) || pair.length !== 2 || !pair.every((p) => typeof p === 'string' && p.length > 0)) bad(`model.merges[${i}] is not a pair of tokens`);
    return pair as [string, string];
  });
  const added = new Map<string, number>();
  for (const t of Array.isArray(raw.added_tokens) ? raw.added_tokens : []) {
    if (!isObject(t) || typeof t.content !== 'string' || !Number.isInteger(t.id)) bad('added_tokens entries need "id" and "content"');
    added.set((t as Json).content as string, (t as Json).id as number);
  }
  return bpeFromVocabAndMerges(m.vocab as Json, merges, { pattern: preTokenizerPattern(raw.pre_tokenizer, bad), added, source });
}

/**
 * Whether a tokenizer.json is GPT-2's kind, which bpeFromHFTokenizer loads
 * into attn's own BPETokenizer: byte-level BPE, no normalizer, a ByteLevel
 * pre-tokenizer (alone, or after one Split) without a prefix space, nothing
 * added around the text. Other files need the full HFTokenizer pipeline.
 */
export function isPlainByteLevel(raw: Json): boolean {
  const m = raw.model;
  if (!isObject(m) || m.type !== 'BPE' || m.ignore_merges || m.byte_fallback || raw.normalizer) return false;
  const post = raw.post_processor;
  if (post !== null && post !== undefined && !(isObject(post) && post.type === 'ByteLevel')) return false;
  const dec = raw.decoder;
  if (dec !== null && dec !== undefined && !(isObject(dec) && dec.type === 'ByteLevel')) return false;
  const pre = raw.pre_tokenizer;
  if (!isObject(pre)) return false;
  if (pre.type === 'ByteLevel') return !pre.add_prefix_space && pre.use_regex !== false;
  if (pre.type !== 'Sequence' || !Array.isArray(pre.pretokenizers) || pre.pretokenizers.length !== 2) return false;
  const [split, level] = pre.pretokenizers as Json[];
  return split?.type === 'Split' && isObject(split.pattern) && typeof split.pattern.Regex === 'string' && split.behavior === 'Isolated' && !split.invert && level?.type === 'ByteLevel' && level.use_regex === false && !level.add_prefix_space;
}

/** The regex a byte-level pre-tokenizer splits with. */
function preTokenizerPattern(pre: unknown, bad: (what: string) => never): string {
  const byteLevel = (p: Json): void => {
    if (p.add_prefix_space) bad('pre_tokenizer ByteLevel with add_prefix_space is not supported');
  };
  if (isObject(pre) && pre.type === 'ByteLevel') {
    byteLevel(pre);
    if (pre.use_regex === false) bad('pre_tokenizer ByteLevel without a regex is not supported');
    return PATTERNS.gpt2;
  }
  if (isObject(pre) && pre.type === 'Sequence' && Array.isArray(pre.pretokenizers) && pre.pretokenizers.length === 2) {
    const [split, level] = pre.pretokenizers as Json[];
    const regex = isObject(split?.pattern) ? split.pattern.Regex : undefined;
    if (split?.type === 'Split' && typeof regex === 'string' && split.behavior === 'Isolated' && level?.type === 'ByteLevel' && level.use_regex === false) {
      byteLevel(level);
      return fromRustRegex(regex);
    }
  }
  return bad(`pre_tokenizer ${JSON.stringify(isObject(pre) ? pre.type : pre)} is not supported (expected ByteLevel, or Split + ByteLevel)`);
}

/** Rust regexes allow `(?i:'s|'t|…)` (GPT-4's pattern has it); JavaScript in Node 20 does not. */
function fromRustRegex(source: string): string {
  return source.replace("(?i:'s|'t|'re|'ve|'m|'ll|'d)", CONTRACTIONS_ANY_CASE);
}
