import { UserError } from '../util/errors.js';
import { IdBuffer } from './id_buffer.js';
import { splitSpecial } from './special.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';

/**
 * Words: runs of letters, marks, digits and underscores; each other character
 * (punctuation, a symbol) alone; and runs of whitespace — kept as tokens so
 * that decoding gives back the text exactly, spacing included.
 */
const WORD_SPLIT = /[\p{L}\p{M}\p{N}_]+|\s+|[^\p{L}\p{M}\p{N}_\s]/gu;

export const UNK = '<unk>';

/**
 * The word-level tokenizer: one token per word, the most frequent words of
 * the training text up to a cap, and `<unk>` (id 0) for every other word.
 * It shows the problem sub-word tokens solve: "cats" is unknown even when
 * "cat" is not, and a vocabulary big enough for real text is huge.
 */
export class WordTokenizer implements Tokenizer {
  readonly type = 'word';
  /** words[0] is `<unk>`. */
  readonly words: string[];
  /**
   * Whether white space is a token (the default). Without, a text is its
   * words and punctuation only — half the tokens for an embedder, whose
   * window then holds twice the words — and decoding puts one space between
   * tokens (lossy: spacing is not kept).
   */
  readonly spaces: boolean;
  /**
   * Whether text is folded to lower case before it is split (learned and
   * encoded alike): "Cheese making" and "cheese making" are then the same
   * tokens, as a keyword search treats them. false by default.
   */
  readonly lowercase: boolean;
  readonly specialTokens: ReadonlyMap<string, number> = new Map([[UNK, 0]]);
  private readonly index: Map<string, number>;

  constructor(words: string[], source = 'word tokenizer', spaces = true, lowercase = false) {
    if (words[0] !== UNK) throw new UserError(`${source}: the first word must be ${UNK}`);
    if (lowercase && words.some((w) => w !== w.toLowerCase())) throw new UserError(`${source}: a lower-case tokenizer has an upper-case word in its vocabulary`);
    this.lowercase = lowercase;
    if (!spaces && words.some((w) => /^\s+$/u.test(w))) throw new UserError(`${source}: a tokenizer without space tokens has white space in its vocabulary`);
    this.words = words;
    this.spaces = spaces;
    this.index = new Map(words.map((w, i) => [w, i]));
    if (this.index.size !== words.length) throw new UserError(`${source}: a word appears twice in the vocabulary`);
    if (words.some((w) => w.length === 0)) throw new UserError(`${source}: the vocabulary has an empty word`);
  }

  /** The `vocabSize − 1` most frequent words (ties broken by code-unit order), plus `<unk>`. */
  static fromText(text: string, vocabSize: number, spaces = true, lowercase = false): WordTokenizer {
    if (!Number.isInteger(vocabSize) || vocabSize < 2) throw new UserError(`vocab size ${vocabSize} is too small for a word tokenizer: it needs ${UNK} and at least one word`);
    const counts = new Map<string, number>();
    for (const m of (lowercase ? text.toLowerCase() : text).matchAll(WORD_SPLIT)) if (spaces || !isSpace(m[0])) counts.set(m[0], (counts.get(m[0]) ?? 0) + 1);
    counts.delete(UNK);
    const ranked = [...counts].sort((x, y) => y[1] - x[1] || (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
    return new WordTokenizer([UNK, ...ranked.slice(0, vocabSize - 1).map(([w]) => w)], 'word tokenizer', spaces, lowercase);
  }

  get vocabSize(): number {
    return this.words.length;
  }

  encode(text: string, options?: EncodeOptions): Int32Array {
    const out = new IdBuffer(text.length / 4 + 16);
    for (const seg of splitSpecial(text, this.specialTokens, options)) {
      if (seg.special !== undefined) out.push(seg.special);
      else for (const m of (this.lowercase ? seg.text.toLowerCase() : seg.text).matchAll(WORD_SPLIT)) if (this.spaces || !isSpace(m[0])) out.push(this.index.get(m[0]) ?? 0);
    }
    return out.toArray();
  }

  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const w = this.words[ids[i]!];
      if (w === undefined) throw new UserError(`token id ${ids[i]} is outside the vocabulary of ${this.words.length}`);
      s += this.spaces || i === 0 ? w : ` ${w}`;
    }
    return s;
  }

  toJSON(): { type: 'word'; words: string[]; spaces?: false; lowercase?: true } {
    return { type: 'word', words: this.words, ...(this.spaces ? {} : { spaces: false as const }), ...(this.lowercase ? { lowercase: true as const } : {}) };
  }

  static fromJSON(raw: Record<string, unknown>, source: string): WordTokenizer {
    if (!Array.isArray(raw.words) || !raw.words.every((w) => typeof w === 'string')) throw new UserError(`${source}: "words" must be an array of strings`);
    if (raw.spaces !== undefined && typeof raw.spaces !== 'boolean') throw new UserError(`${source}: "spaces" must be true or false`);
    if (raw.lowercase !== undefined && typeof raw.lowercase !== 'boolean') throw new UserError(`${source}: "lowercase" must be true or false`);
    return new WordTokenizer(raw.words as string[], source, raw.spaces !== false, raw.lowercase === true);
  }
}

const isSpace = (w: string): boolean => /^\s/u.test(w);
