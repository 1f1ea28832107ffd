import { CharTokenizer } from './char.js';
import type { Tokenizer } from './tokenizer.js';

export type { Tokenizer } from './tokenizer.js';
export { CharTokenizer } from './char.js';

/** Rebuild a tokenizer from the object its toJSON() produced. */
export function tokenizerFromJSON(raw: unknown, source = 'tokenizer.json'): Tokenizer {
  const o = raw as { type?: unknown; chars?: unknown };
  if (o && typeof o === 'object' && o.type === 'char') {
    if (!Array.isArray(o.chars) || !o.chars.every((c) => typeof c === 'string' && Array.from(c).length === 1)) {
      throw new Error(`${source}: "chars" must be an array of single characters`);
    }
    return new CharTokenizer(o.chars as string[]);
  }
  throw new Error(`${source}: unsupported tokenizer type ${JSON.stringify(o?.type)} (supported: char)`);
}
