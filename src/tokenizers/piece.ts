import { UserError } from '../util/errors.js';
import type { Tokenizer } from './tokenizer.js';

/** The ids every sequence-to-sequence vocabulary starts with. */
export const PAD = 0;
export const BOS = 1;
export const EOS = 2;
const SPECIALS = ['<pad>', '<bos>', '<eos>'];

/**
 * Tokens for translation: padding, begin and end of sentence, then a list of
 * pieces (whole words, morphemes, single characters). Encoding takes the
 * longest piece that matches at each point, so with the pieces of the
 * numbers task "einundzwanzig" is ein·und·zwanzig, and with only characters
 * it is a character tokenizer. Special tokens are never read from text: the
 * model adds BOS and EOS itself.
 */
export class PieceTokenizer implements Tokenizer {
  readonly type = 'piece';
  readonly pieces: string[];
  readonly specialTokens: ReadonlyMap<string, number> = new Map(SPECIALS.map((s, i) => [s, i]));
  private readonly index: Map<string, number>;
  private readonly longest: number;

  constructor(pieces: string[], source = 'piece tokenizer') {
    if (pieces.length === 0) throw new UserError(`${source}: no pieces`);
    if (pieces.some((p) => p.length === 0 || SPECIALS.includes(p))) throw new UserError(`${source}: a piece is empty or a special token`);
    this.pieces = pieces;
    this.index = new Map(pieces.map((p, i) => [p, i + SPECIALS.length]));
    if (this.index.size !== pieces.length) throw new UserError(`${source}: a piece appears twice`);
    this.longest = Math.max(...pieces.map((p) => p.length));
  }

  /** The given pieces plus every character of the texts, so any of them can be encoded. */
  static fromTexts(texts: Iterable<string>, pieces: string[] = []): PieceTokenizer {
    const chars = new Set<string>();
    for (const t of texts) for (const c of t) chars.add(c);
    const extra = [...chars].filter((c) => !pieces.includes(c)).sort();
    return new PieceTokenizer([...pieces, ...extra]);
  }

  static fromJSON(raw: Record<string, unknown>, source = 'tokenizer.json'): PieceTokenizer {
    if (raw.type !== 'piece' || !Array.isArray(raw.pieces) || !raw.pieces.every((p) => typeof p === 'string')) {
      throw new UserError(`${source}: expected a piece tokenizer ({"type": "piece", "pieces": [...]})`);
    }
    return new PieceTokenizer(raw.pieces as string[], source);
  }

  get vocabSize(): number {
    return this.pieces.length + SPECIALS.length;
  }

  encode(text: string): Int32Array {
    const ids: number[] = [];
    for (let i = 0; i < text.length; ) {
      let len = Math.min(this.longest, text.length - i);
      while (len > 0 && !this.index.has(text.slice(i, i + len))) len--;
      if (len === 0) {
        const c = String.fromCodePoint(text.codePointAt(i)!);
        throw new UserError(`character ${JSON.stringify(c)} in ${JSON.stringify(text)} is not in the model's vocabulary`);
      }
      ids.push(this.index.get(text.slice(i, i + len))!);
      i += len;
    }
    return Int32Array.from(ids);
  }

  /** Special tokens decode to nothing: a translation is its pieces. */
  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) s += this.piece(ids[i]!, '');
    return s;
  }

  /** One token as text (for attention labels); specials as their names unless `special` is given. */
  piece(id: number, special?: string): string {
    if (id < SPECIALS.length) return special ?? SPECIALS[id]!;
    const p = this.pieces[id - SPECIALS.length];
    if (p === undefined) throw new UserError(`token id ${id} is outside the vocabulary of ${this.vocabSize}`);
    return p;
  }

  toJSON(): { type: 'piece'; pieces: string[] } {
    return { type: 'piece', pieces: this.pieces };
  }
}
