import { UserError } from '../util/errors.js';
import type { Tokenizer } from './tokenizer.js';

/**
 * The simplest tokenizer: every distinct character of the training text is a
 * token. Characters are Unicode code points, so an emoji is one token, not two
 * UTF-16 halves. The vocabulary is sorted so it does not depend on text order.
 */
export class CharTokenizer implements Tokenizer {
  readonly type = 'char';
  readonly chars: string[];
  readonly specialTokens: ReadonlyMap<string, number> = new Map();
  private readonly index: Map<string, number>;

  constructor(chars: string[]) {
    if (chars.length === 0) throw new UserError('a character tokenizer needs at least one character');
    this.chars = chars;
    this.index = new Map(chars.map((c, i) => [c, i]));
    if (this.index.size !== chars.length) throw new UserError('character tokenizer has duplicate characters');
  }

  static fromText(text: string): CharTokenizer {
    return new CharTokenizer([...new Set(Array.from(text))].sort());
  }

  get vocabSize(): number {
    return this.chars.length;
  }

  encode(text: string): Int32Array {
    const cps = Array.from(text);
    const ids = new Int32Array(cps.length);
    for (let i = 0; i < cps.length; i++) {
      const id = this.index.get(cps[i]!);
      if (id === undefined) throw new UserError(`character ${JSON.stringify(cps[i])} is not in the tokenizer's vocabulary`);
      ids[i] = id;
    }
    return ids;
  }

  decode(ids: ArrayLike<number>): string {
    let s = '';
    for (let i = 0; i < ids.length; i++) {
      const c = this.chars[ids[i]!];
      if (c === undefined) throw new UserError(`token id ${ids[i]} is outside the vocabulary of ${this.chars.length}`);
      s += c;
    }
    return s;
  }

  toJSON(): { type: 'char'; chars: string[] } {
    return { type: 'char', chars: this.chars };
  }
}
