/**
 * Which special tokens (like `<|endoftext|>`) may appear in the text given to
 * encode: 'all', or a set of their strings.
 */
export type SpecialSet = 'all' | ReadonlySet<string> | readonly string[];

/**
 * The special-token policy, as in tiktoken. A special token's string found in
 * the text is
 * - encoded as its one id if it is in `allowedSpecial` (default: none);
 * - an error if it is in `disallowedSpecial` (default: 'all' not allowed) —
 *   text from a user should not be able to inject control tokens by accident;
 * - encoded as ordinary text otherwise (pass `disallowedSpecial: []`).
 */
export interface EncodeOptions {
  allowedSpecial?: SpecialSet;
  disallowedSpecial?: SpecialSet;
  /**
   * Add the tokens the tokenizer puts around every text (Llama's BOS), as
   * Hugging Face's encode does by default. Only Hugging Face tokenizer.json
   * files define any; off unless asked, since chat templates write their own.
   */
  addSpecialTokens?: boolean;
}

/** Turns text into integer ids and back; saved as tokenizer.json beside the model. */
export interface Tokenizer {
  readonly type: string;
  /** Every id is in [0, vocabSize), special tokens included. */
  readonly vocabSize: number;
  /** Special token string → id. Never split by encode; see EncodeOptions. */
  readonly specialTokens: ReadonlyMap<string, number>;
  encode(text: string, options?: EncodeOptions): Int32Array;
  decode(ids: ArrayLike<number>): string;
  /**
   * Byte-level tokenizers give the UTF-8 bytes of tokens, which may split a
   * character; a streaming decoder needs them to print each character whole.
   */
  decodeBytes?(ids: ArrayLike<number>): Uint8Array;
  toJSON(): object;
}

/**
 * Decode one id at a time, as a model generates them. With byte-level tokens a
 * character can span two tokens, so bytes are held until the character is whole.
 */
export function streamDecoder(tokenizer: Tokenizer): (id: number) => string {
  if (!tokenizer.decodeBytes) return (id) => tokenizer.decode([id]);
  const utf8 = new TextDecoder('utf-8', { ignoreBOM: true });
  return (id) => utf8.decode(tokenizer.decodeBytes!([id]), { stream: true });
}
