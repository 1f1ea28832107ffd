import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { UserError } from '../util/errors.js';
import { BPETokenizer } from './bpe.js';
import { trainBPE } from './bpe_train.js';
import { CharTokenizer } from './char.js';
import { DigitsTokenizer } from './digits.js';
import { bpeFromGPT2Files } from './gpt2_files.js';
import { bpeFromHFTokenizer, isPlainByteLevel } from './hf_tokenizer.js';
import { HFTokenizer } from './hf/pipeline.js';
import type { Tokenizer } from './tokenizer.js';
import { PieceTokenizer } from './piece.js';
import { WordTokenizer } from './word.js';

export type { Tokenizer, EncodeOptions, SpecialSet } from './tokenizer.js';
export { streamDecoder } from './tokenizer.js';
export { CharTokenizer } from './char.js';
export { DigitsTokenizer } from './digits.js';
export { WordTokenizer } from './word.js';
export { BPETokenizer, type BPEParts, type Merge } from './bpe.js';
export { trainBPE, type BPETrainOptions } from './bpe_train.js';
export { bpeFromGPT2Files, bpeFromVocabAndMerges } from './gpt2_files.js';
export { bpeFromHFTokenizer } from './hf_tokenizer.js';
export { HFTokenizer } from './hf/pipeline.js';
export { bpeFromRanks, parseTiktokenFile } from './tiktoken_ranks.js';
export { PATTERNS, type PatternName } from './pretokenize.js';
export { BYTE_TO_UNICODE, bytesToUnicode, unicodeToBytes } from './bytes.js';

export const TOKENIZER_KINDS = ['char', 'digits', 'word', 'bpe'] as const;
export type TokenizerKind = (typeof TOKENIZER_KINDS)[number];

/**
 * Rebuild a tokenizer from its saved JSON: ours (toJSON's object, with a
 * "type") or a Hugging Face tokenizer.json (with a "model"), whose
 * tokenizer_config.json, if any, is `config`. GPT-2's plain byte-level files
 * load as attn's own BPETokenizer; everything else Hugging Face ships (Llama,
 * Qwen, Gemma) runs through the full HFTokenizer pipeline.
 */
export function tokenizerFromJSON(raw: unknown, source = 'tokenizer.json', config: Record<string, unknown> = {}): Tokenizer {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${source}: expected a JSON object`);
  const o = raw as Record<string, unknown>;
  if (o.type === 'char') {
    if (!Array.isArray(o.chars) || !o.chars.every((c) => typeof c === 'string' && Array.from(c).length === 1)) {
      throw new UserError(`${source}: "chars" must be an array of single characters`);
    }
    return new CharTokenizer(o.chars as string[]);
  }
  if (o.type === 'digits') return DigitsTokenizer.fromJSON(o, source);
  if (o.type === 'word') return WordTokenizer.fromJSON(o, source);
  if (o.type === 'bpe') return BPETokenizer.fromJSON(o, source);
  if (o.type === 'piece') return PieceTokenizer.fromJSON(o, source);
  if (o.type === undefined && 'model' in o) return isPlainByteLevel(o) ? bpeFromHFTokenizer(o, source) : new HFTokenizer(o, config, source);
  throw new UserError(`${source}: unsupported tokenizer type ${JSON.stringify(o.type)} (supported: char, digits, word, bpe, or a Hugging Face tokenizer.json)`);
}

function readJSONFile(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read tokenizer ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : (e as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new UserError(`${path}: invalid JSON: ${(e as Error).message}`);
  }
}

/**
 * A tokenizer file (our tokenizer.json or a Hugging Face one), or a directory
 * holding tokenizer.json (+ tokenizer_config.json), as Hugging Face ships them.
 */
export function loadTokenizerFile(path: string): Tokenizer {
  if (existsSync(path) && statSync(path).isDirectory()) {
    const t = loadDirTokenizer(path);
    if (!t) throw new UserError(`${path} is a directory without a tokenizer (tokenizer.json, or vocab.json + merges.txt)`);
    return t;
  }
  // A Hugging Face tokenizer.json may have its tokenizer_config.json beside it.
  return tokenizerFromJSON(readJSONFile(path), path, readTokenizerConfig(dirname(path)));
}

/** tokenizer_config.json beside a tokenizer.json, or {} if there is none. */
export function readTokenizerConfig(dir: string): Record<string, unknown> {
  const path = join(dir, 'tokenizer_config.json');
  if (!existsSync(path)) return {};
  const raw = readJSONFile(path);
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new UserError(`${path}: expected a JSON object`);
  return raw as Record<string, unknown>;
}

/**
 * The tokenizer a model directory carries: tokenizer.json (ours or Hugging
 * Face's), else GPT-2's vocab.json + merges.txt (or encoder.json + vocab.bpe).
 * Null if it has none.
 */
export function loadDirTokenizer(dir: string): Tokenizer | null {
  const json = join(dir, 'tokenizer.json');
  if (existsSync(json)) return tokenizerFromJSON(readJSONFile(json), json, readTokenizerConfig(dir));
  for (const [vocab, merges] of [['vocab.json', 'merges.txt'], ['encoder.json', 'vocab.bpe']] as const) {
    const v = join(dir, vocab);
    const m = join(dir, merges);
    if (existsSync(v) && existsSync(m)) return bpeFromGPT2Files(readFileSync(v, 'utf8'), readFileSync(m, 'utf8'), { encoder: v, merges: m });
  }
  return null;
}

/** Default vocabulary sizes when training a tokenizer for a model. */
export const DEFAULT_VOCAB_SIZE: Record<TokenizerKind, number | undefined> = { char: undefined, digits: undefined, word: 4096, bpe: 512 };

/**
 * A new tokenizer learned from the training text. BPE reserves one id for
 * <|endoftext|>, GPT-2's document separator, within vocabSize.
 */
export function buildTokenizer(kind: TokenizerKind, text: string, vocabSize?: number, onProgress?: (done: number, total: number) => void): Tokenizer {
  if (kind === 'char') return CharTokenizer.fromText(text);
  if (kind === 'digits') return DigitsTokenizer.fromText(text);
  const size = vocabSize ?? DEFAULT_VOCAB_SIZE[kind]!;
  if (kind === 'word') return WordTokenizer.fromText(text, size);
  return trainBPE(text, { vocabSize: size, specialTokens: ['<|endoftext|>'], ...(onProgress ? { onProgress } : {}) });
}
