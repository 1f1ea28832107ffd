import { UserError } from '../../util/errors.js';
import { IdBuffer } from '../id_buffer.js';
import type { EncodeOptions, SpecialSet, Tokenizer } from '../tokenizer.js';
import { AddedTokenMatcher, parseAddedTokens, type AddedToken } from './added_tokens.js';
import { HFBpeModel } from './bpe_model.js';
import { asBytes, decoderFrom, type Decoder } from './decoder.js';
import { normalizerFrom, type Normalizer } from './normalizer.js';
import { wrappingFrom, type Wrapping } from './post_processor.js';
import { preTokenizerFrom, type PreTokenizer } from './pre_tokenizer.js';

type Json = Record<string, unknown>;

const isObject = (x: unknown): x is Json => typeof x === 'object' && x !== null && !Array.isArray(x);

const setOf = (s: SpecialSet | undefined, fallback: 'all' | 'none'): ReadonlySet<string> | 'all' => {
  if (s === undefined) return fallback === 'all' ? 'all' : new Set();
  return s === 'all' ? 'all' : new Set(s);
};
const has = (s: ReadonlySet<string> | 'all', t: string): boolean => s === 'all' || s.has(t);

/**
 * A Hugging Face tokenizer.json, run as the `tokenizers` library does:
 *
 *   1. added tokens are found in the raw text and kept whole;
 *   2. the text between them is normalized (NFC, "▁" for spaces, …), and
 *      added tokens that are matched after normalization are found;
 *   3. the pre-tokenizer cuts it into pieces (a regex, bytes, "▁" words);
 *   4. the BPE model merges inside each piece;
 *   5. with addSpecialTokens, the post-processor's tokens go around it (BOS).
 *
 * Decoding runs the decoder's steps on the token strings. Special added tokens
 * follow attn's EncodeOptions policy (an error unless allowed); the other
 * added tokens (Gemma's <unused…>, <mask>) are vocabulary and always match.
 */
export class HFTokenizer implements Tokenizer {
  readonly type = 'hf';
  readonly vocabSize: number;
  readonly specialTokens: ReadonlyMap<string, number>;
  /** tokenizer_config.json (bos_token, eos_token, chat_template, …); {} when there is none. */
  readonly config: Json;
  private readonly raw: Json;
  private readonly normalizer: Normalizer | null;
  private readonly preTokenizer: PreTokenizer | null;
  private readonly model: HFBpeModel;
  private readonly decoder: Decoder;
  private readonly wrapping: Wrapping;
  private readonly added: AddedToken[];
  private readonly addedContents: Set<string>;
  private readonly addedIds: Map<string, number>;
  private readonly rawMatcher: AddedTokenMatcher;
  private readonly normalizedMatcher: AddedTokenMatcher;
  /** Token string of every id (added tokens included). */
  private readonly tokens: string[];
  private bytesOf: Array<Uint8Array | undefined> = [];

  constructor(raw: Json, config: Json = {}, source = 'tokenizer.json') {
    const model = raw.model;
    if (!isObject(model) || model.type !== 'BPE') {
      throw new UserError(`${source}: model type ${JSON.stringify(isObject(model) ? model.type : undefined)} is not supported (attn loads BPE tokenizers: byte-level like Llama 3 and Qwen, or SentencePiece-style like Llama 2 and Gemma)`);
    }
    this.raw = raw;
    this.config = config;
    this.normalizer = normalizerFrom(raw.normalizer, source);
    this.preTokenizer = preTokenizerFrom(raw.pre_tokenizer, source);
    this.model = new HFBpeModel(model, source);
    this.decoder = decoderFrom(raw.decoder, source);
    this.added = parseAddedTokens(raw.added_tokens, source);
    this.addedContents = new Set(this.added.map((t) => t.content));
    this.addedIds = new Map(this.added.map((t) => [t.content, t.id]));
    // Tokens matched in raw text, and those matched after normalization (by their normalized spelling).
    const normalizer = this.normalizer;
    this.rawMatcher = new AddedTokenMatcher(this.added.filter((t) => !t.normalized || !normalizer));
    this.normalizedMatcher = new AddedTokenMatcher(
      this.added.filter((t) => t.normalized && normalizer),
      (t) => normalizer!(t.content),
    );
    let size = 0;
    for (const id of this.model.vocab.values()) size = Math.max(size, id + 1);
    for (const t of this.added) size = Math.max(size, t.id + 1);
    this.tokens = new Array<string>(size);
    for (const [token, id] of this.model.vocab) this.tokens[id] = token;
    for (const t of this.added) this.tokens[t.id] = t.content;
    this.vocabSize = this.tokens.length;
    this.specialTokens = new Map(this.added.filter((t) => t.special).map((t) => [t.content, t.id]));
    this.wrapping = wrappingFrom(raw.post_processor, config, (t) => this.tokenToId(t), source);
  }

  /** The id of a token string (vocabulary or added), if it has one. */
  tokenToId(token: string): number | undefined {
    return this.addedIds.get(token) ?? this.model.vocab.get(token);
  }

  /** The token string of an id, as the vocabulary spells it. */
  idToToken(id: number): string | undefined {
    return this.tokens[id];
  }

  /**
   * Text → ids. Special tokens in the text follow the EncodeOptions policy;
   * `addSpecialTokens` adds what the post-processor puts around a text (BOS
   * for Llama and Gemma) — off by default, since a chat template already
   * writes its own.
   */
  encode(text: string, options: EncodeOptions = {}): Int32Array {
    const allowed = setOf(options.allowedSpecial, 'none');
    const disallowed = setOf(options.disallowedSpecial, 'all');
    const accept = (t: AddedToken): boolean => {
      if (!t.special || has(allowed, t.content)) return true;
      if (has(disallowed, t.content)) {
        throw new UserError(`the text contains the special token ${JSON.stringify(t.content)}, which is not allowed here (allow it, or encode it as plain text)`);
      }
      return false;
    };
    const out = new IdBuffer(text.length / 3 + 16);
    if (options.addSpecialTokens) for (const id of this.wrapping.prefix) out.push(id);
    this.rawMatcher.split(text, accept).forEach((section, index) => {
      if (section.token) out.push(section.token.id);
      else this.encodeSection(section.text, index, accept, out);
    });
    if (options.addSpecialTokens) for (const id of this.wrapping.suffix) out.push(id);
    return out.toArray();
  }

  private encodeSection(text: string, index: number, accept: (t: AddedToken) => boolean, out: IdBuffer): void {
    const normalized = this.normalizer ? this.normalizer(text) : text;
    for (const sub of this.normalizedMatcher.split(normalized, accept)) {
      if (sub.token) {
        out.push(sub.token.id);
        continue;
      }
      const pieces = this.preTokenizer ? this.preTokenizer([sub.text], index) : [sub.text];
      for (const piece of pieces) this.model.encode(piece, out);
    }
  }

  /**
   * Ids → text, through the decoder's steps. Unlike Hugging Face's decode it
   * does not "clean up tokenization spaces" (" ." → "."): that loses text,
   * and attn wants decode(encode(text)) to be the text.
   */
  decode(ids: ArrayLike<number>): string {
    const tokens: string[] = [];
    for (let i = 0; i < ids.length; i++) tokens.push(this.token(ids[i]!));
    return this.decoder.decode(tokens, this.addedContents).join('');
  }

  /**
   * The bytes of the ids as they read in the middle of a text, for streaming:
   * a token may hold part of a character (a byte-level token, a `<0xNN>`
   * byte), and a streaming decoder prints each character whole. Steps that
   * depend on position (Strip, Metaspace's first space) are not applied.
   */
  decodeBytes(ids: ArrayLike<number>): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      const token = this.token(id);
      let b = this.bytesOf[id];
      if (b === undefined) this.bytesOf[id] = b = asBytes(this.decoder.tokenBytes(token, this.addedContents.has(token)));
      parts.push(b);
      total += b.length;
    }
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }

  private token(id: number): string {
    const t = Number.isInteger(id) ? this.tokens[id] : undefined;
    if (t === undefined) throw new UserError(`token id ${id} is outside the vocabulary of ${this.vocabSize}`);
    return t;
  }

  /** The tokenizer.json it was read from: Hugging Face's format is attn's format for these. */
  toJSON(): object {
    return this.raw;
  }
}
