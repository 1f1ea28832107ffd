import { UserError } from '../util/errors.js';
import { splitSpecial } from './special.js';
import type { EncodeOptions, Tokenizer } from './tokenizer.js';

/** The longest number that is one token; longer runs of digits are cut into pieces of at most this many. */
export const MAX_NUMBER_DIGITS = 3;

const isDigit = (c: string): boolean => c >= '0' && c <= '9';
const isNumber = (s: string): boolean => s.length >= 2 && s.length <= MAX_NUMBER_DIGITS && [...s].every(isDigit);

/**
 * Characters as tokens, except numbers: every character of the training text
 * is a token, and so is every number of two or three digits it contains
 * (`17` is one token, not `1` `7`). Letters stay single characters, so a
 * model can still copy, reverse or capitalise a word letter by letter; a sum
 * `9 + 8 = 17` ends in one prediction instead of two. A run of digits is
 * encoded greedily, longest known number first (`1234` → `123` `4` when `123`
 * is in the vocabulary), so every text of known characters encodes.
 *
 * The vocabulary is a list (id = index) of characters, numbers and special
 * tokens (`<|im_end|>` when SFT adds the chat markers: one id each, never
 * split). Growing it appends, so the ids a model was trained on stay put.
 */
export class DigitsTokenizer implements Tokenizer {
  readonly type = 'digits';
  readonly vocab: readonly string[];
  readonly specialTokens: ReadonlyMap<string, number>;
  private readonly index: Map<string, number>;

  constructor(vocab: readonly string[], special: readonly string[] = []) {
    if (vocab.length === 0) throw new UserError('a digits tokenizer needs at least one token');
    const specials = new Set(special);
    this.vocab = vocab;
    this.index = new Map();
    const sp = new Map<string, number>();
    vocab.forEach((t, id) => {
      if (specials.has(t)) sp.set(t, id);
      else if (Array.from(t).length !== 1 && !isNumber(t)) throw new UserError(`digits tokenizer: ${JSON.stringify(t)} is neither one character, a number of 2–${MAX_NUMBER_DIGITS} digits, nor a special token`);
      else this.index.set(t, id);
    });
    if (this.index.size + sp.size !== vocab.length) throw new UserError('digits tokenizer has duplicate tokens');
    for (const s of specials) if (!sp.has(s)) throw new UserError(`digits tokenizer: special token ${JSON.stringify(s)} is not in the vocabulary`);
    this.specialTokens = sp;
  }

  /** Every character of the text, then every number of 2–3 digits in it, each sorted. */
  static fromText(text: string): DigitsTokenizer {
    const chars = [...new Set(Array.from(text))].sort();
    const numbers = new Set<string>();
    for (const run of text.match(/[0-9]+/g) ?? []) for (const piece of numberPieces(run, (s) => isNumber(s))) if (piece.length > 1) numbers.add(piece);
    return new DigitsTokenizer([...chars, ...[...numbers].sort((a, b) => a.length - b.length || a.localeCompare(b))]);
  }

  /** This tokenizer with tokens appended (characters, numbers or special tokens): the existing ids unchanged. */
  extended(tokens: readonly string[], special: readonly string[] = []): DigitsTokenizer {
    return new DigitsTokenizer([...this.vocab, ...tokens, ...special], [...this.specialTokens.keys(), ...special]);
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  encode(text: string, options?: EncodeOptions): Int32Array {
    const ids: number[] = [];
    for (const seg of splitSpecial(text, this.specialTokens, options)) {
      if (seg.special !== undefined) ids.push(seg.special);
      else this.encodeOrdinary(seg.text, ids);
    }
    return Int32Array.from(ids);
  }

  private encodeOrdinary(text: string, ids: number[]): void {
    const cps = Array.from(text);
    for (let i = 0; i < cps.length; ) {
      if (isDigit(cps[i]!)) {
        let j = i;
        while (j < cps.length && isDigit(cps[j]!)) j++;
        for (const piece of numberPieces(cps.slice(i, j).join(''), (s) => this.index.has(s))) ids.push(this.id(piece));
        i = j;
      } else ids.push(this.id(cps[i++]!));
    }
  }

  private id(token: string): number {
    const id = this.index.get(token);
    if (id === undefined) throw new UserError(`character ${JSON.stringify(token)} is not in the tokenizer's vocabulary`);
    return id;
  }

  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const t = this.vocab[ids[i]!];
      if (t === undefined) throw new UserError(`token id ${ids[i]} is outside the vocabulary of ${this.vocab.length}`);
      s += t;
    }
    return s;
  }

  toJSON(): { type: 'digits'; vocab: readonly string[]; special: string[] } {
    return { type: 'digits', vocab: this.vocab, special: [...this.specialTokens.keys()] };
  }

  static fromJSON(o: Record<string, unknown>, source = 'tokenizer.json'): DigitsTokenizer {
    if (!Array.isArray(o.vocab) || !o.vocab.every((t) => typeof t === 'string')) throw new UserError(`${source}: "vocab" must be an array of strings`);
    const special = o.special ?? [];
    if (!Array.isArray(special) || !special.every((t) => typeof t === 'string')) throw new UserError(`${source}: "special" must be an array of strings`);
    return new DigitsTokenizer(o.vocab as string[], special as string[]);
  }
}

/** A run of digits cut greedily into the longest pieces `known` accepts (single digits always). */
function numberPieces(run: string, known: (s: string) => boolean): string[] {
  const out: string[] = [];
  for (let i = 0; i < run.length; ) {
    let n = Math.min(MAX_NUMBER_DIGITS, run.length - i);
    while (n > 1 && !known(run.slice(i, i + n))) n--;
    out.push(run.slice(i, i + n));
    i += n;
  }
  return out;
}
