import { UserError } from '../../util/errors.js';

type Json = Record<string, unknown>;

/** One entry of tokenizer.json's added_tokens. */
export interface AddedToken {
  id: number;
  content: string;
  /** Special tokens (<s>, <|im_end|>) are control tokens; others are extra vocabulary. */
  special: boolean;
  /** Matched in the normalized text (true) or the raw text (false). */
  normalized: boolean;
  /** Whitespace before (lstrip) or after (rstrip) the token belongs to it. */
  lstrip: boolean;
  rstrip: boolean;
  /** Only matched as a whole word. */
  singleWord: boolean;
}

export function parseAddedTokens(raw: unknown, source: string): AddedToken[] {
  if (raw === undefined || raw === null) return [];
  if (!Array.isArray(raw)) throw new UserError(`${source}: added_tokens must be an array`);
  return raw.map((t, i) => {
    const o = t as Json;
    if (typeof o !== 'object' || o === null || typeof o.content !== 'string' || o.content === '' || !Number.isInteger(o.id) || (o.id as number) < 0) {
      throw new UserError(`${source}: added_tokens[${i}] needs an "id" and a non-empty "content"`);
    }
    const special = o.special === true;
    return {
      id: o.id as number,
      content: o.content,
      special,
      normalized: typeof o.normalized === 'boolean' ? o.normalized : !special,
      lstrip: o.lstrip === true,
      rstrip: o.rstrip === true,
      singleWord: o.single_word === true,
    };
  });
}

/** A stretch of text: ordinary text to encode, or one added token. */
export type Section = { text: string; token?: undefined } | { text: string; token: AddedToken };

/** A trie node: children by UTF-16 code unit, and the token ending here. */
interface Node {
  next: Map<number, Node>;
  token?: AddedToken;
}

const isWordChar = (c: string | undefined): boolean => c !== undefined && /[\p{L}\p{N}_]/u.test(c);

/**
 * Finds added tokens in text: at each position the longest token that starts
 * there (leftmost-longest, as Hugging Face's matcher does), with a trie so
 * thousands of tokens (Gemma has 6 415) cost one lookup per character.
 */
export class AddedTokenMatcher {
  private readonly root: Node = { next: new Map() };
  readonly size: number;

  constructor(tokens: readonly AddedToken[], spelling: (t: AddedToken) => string = (t) => t.content) {
    this.size = tokens.length;
    for (const t of tokens) {
      const s = spelling(t);
      if (s === '') continue;
      let node = this.root;
      for (let i = 0; i < s.length; i++) {
        const c = s.charCodeAt(i);
        let child = node.next.get(c);
        if (!child) node.next.set(c, (child = { next: new Map() }));
        node = child;
      }
      node.token ??= t;
    }
  }

  /**
   * Cut text into sections. `accept` says whether a found token counts (a
   * special token the caller does not allow stays ordinary text). lstrip and
   * rstrip tokens take the whitespace beside them.
   */
  split(text: string, accept: (t: AddedToken) => boolean): Section[] {
    if (this.size === 0) return text ? [{ text }] : [];
    const out: Section[] = [];
    let start = 0; // start of the pending ordinary text
    for (let i = 0; i < text.length; ) {
      let node: Node | undefined = this.root;
      let found: AddedToken | undefined;
      let foundEnd = i;
      for (let j = i; j < text.length; j++) {
        node = node.next.get(text.charCodeAt(j));
        if (!node) break;
        if (node.token) {
          found = node.token;
          foundEnd = j + 1;
        }
      }
      if (!found || !accept(found) || (found.singleWord && (isWordChar(text[i - 1]) || isWordChar(text[foundEnd])))) {
        i++;
        continue;
      }
      let before = text.slice(start, i);
      if (found.lstrip) before = before.trimEnd();
      if (before) out.push({ text: before });
      out.push({ text: found.content, token: found });
      i = foundEnd;
      if (found.rstrip) while (i < text.length && /\s/u.test(text[i]!)) i++;
      start = i;
    }
    if (start < text.length) out.push({ text: text.slice(start) });
    return out;
  }
}
