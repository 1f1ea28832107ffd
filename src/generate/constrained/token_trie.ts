import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { isPlainStringByte } from './json_automaton.js';

/**
 * A prefix tree over the vocabulary's tokens, by the bytes each decodes to:
 * the token-prefix index of constrained decoding. Tokens that share a
 * beginning share a path, so finding every token the grammar allows walks
 * the automaton once per distinct prefix instead of once per token, and a
 * whole subtree is cut off at its first wrong byte.
 *
 * Each node also knows, for the one state where almost everything is
 * allowed — the middle of a string — whether every byte below it is a plain
 * string character (`plain`) and how deep it goes (`height`): then the
 * whole subtree is allowed without walking it. Its tokens are numbered
 * contiguously (`lo`…`hi` in `order`), so that takes one loop.
 */
export interface TrieNode {
  /** Edge bytes to the children, and the children, in byte order. */
  bytes: number[];
  kids: TrieNode[];
  /** Tokens whose bytes end exactly here. */
  ends: number[];
  /** This node's subtree is order[lo … hi). */
  lo: number;
  hi: number;
  /** The byte into this node and every byte below it are plain string characters. */
  plain: boolean;
  /** Bytes from the parent to the deepest token below (1 for a leaf). */
  height: number;
}

export class TokenTrie {
  readonly root: TrieNode;
  /** Token ids in depth-first order: every subtree is a contiguous run. */
  readonly order: Int32Array;
  /** The bytes of each token id (empty for special tokens and ids past the tokenizer). */
  readonly tokenBytes: Uint8Array[];
  readonly size: number;

  /** `tokens[id]` = the bytes of token id, or null for tokens never to be generated as text. */
  constructor(tokens: ReadonlyArray<Uint8Array | null>) {
    this.root = newNode();
    this.tokenBytes = tokens.map((t) => t ?? new Uint8Array(0));
    let size = 0;
    tokens.forEach((t, id) => {
      if (!t || t.length === 0) return;
      let node = this.root;
      for (const b of t) node = child(node, b);
      node.ends.push(id);
      size++;
    });
    this.size = size;
    this.order = new Int32Array(size);
    let next = 0;
    const number = (node: TrieNode, byte: number): void => {
      node.lo = next;
      for (const id of node.ends) this.order[next++] = id;
      let plain = byte < 0 || isPlainStringByte(byte);
      let height = 0;
      node.kids.forEach((k, i) => {
        number(k, node.bytes[i]!);
        plain &&= k.plain;
        height = Math.max(height, k.height);
      });
      node.hi = next;
      node.plain = plain;
      node.height = height + 1;
    };
    number(this.root, -1);
  }

  /**
   * The trie of a tokenizer's vocabulary, for a model with `vocabSize`
   * outputs. Special tokens (<|endoftext|>, <|im_start|>, …) are left out:
   * they are control tokens, never text of the document.
   */
  static of(tokenizer: Tokenizer, vocabSize: number): TokenTrie {
    const special = new Set(tokenizer.specialTokens.values());
    const utf8 = new TextEncoder();
    const tokens: Array<Uint8Array | null> = [];
    for (let id = 0; id < vocabSize; id++) {
      if (id >= tokenizer.vocabSize || special.has(id)) tokens.push(null);
      else tokens.push(tokenizer.decodeBytes ? tokenizer.decodeBytes([id]) : utf8.encode(tokenizer.decode([id])));
    }
    return new TokenTrie(tokens);
  }
}

function newNode(): TrieNode {
  return { bytes: [], kids: [], ends: [], lo: 0, hi: 0, plain: true, height: 1 };
}

function child(node: TrieNode, b: number): TrieNode {
  // Children are few except at the root; keep them sorted by byte.
  let lo = 0;
  let hi = node.bytes.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (node.bytes[mid]! < b) lo = mid + 1;
    else hi = mid;
  }
  if (node.bytes[lo] === b) return node.kids[lo]!;
  const k = newNode();
  node.bytes.splice(lo, 0, b);
  node.kids.splice(lo, 0, k);
  return k;
}

const cache = new WeakMap<Tokenizer, Map<number, TokenTrie>>();

/** TokenTrie.of, built once per tokenizer and vocabulary size (it takes a moment for 50k tokens). */
export function tokenTrieFor(tokenizer: Tokenizer, vocabSize: number): TokenTrie {
  let m = cache.get(tokenizer);
  if (!m) cache.set(tokenizer, (m = new Map()));
  let t = m.get(vocabSize);
  if (!t) m.set(vocabSize, (t = TokenTrie.of(tokenizer, vocabSize)));
  return t;
}
