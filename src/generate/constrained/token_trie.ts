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
 *
 * The nodes live in typed arrays (node n's children are the edges
 * childStart[n] … childStart[n+1]), not in objects: GPT-2's vocabulary makes
 * about 100 000 nodes, and as objects every major garbage collection would
 * walk them all, stalling decoding for hundreds of milliseconds.
 */
export class TokenTrie {
  /** Number of nodes; node 0 is the root. */
  readonly nodes: number;
  /** Node n's children are edges childStart[n] … childStart[n+1] − 1, in byte order. */
  readonly childStart: Int32Array;
  readonly edgeByte: Uint8Array;
  readonly edgeNode: Int32Array;
  /** Tokens whose bytes end exactly at node n: endIds[endStart[n] … endStart[n+1]). */
  readonly endStart: Int32Array;
  readonly endIds: Int32Array;
  /** Node n's subtree is order[lo[n] … hi[n]). */
  readonly lo: Int32Array;
  readonly hi: Int32Array;
  /** 1: the byte into node n and every byte below it are plain string characters. */
  readonly plain: Uint8Array;
  /** Bytes from node n's parent to the deepest token below (1 for a leaf). */
  readonly height: Int32Array;
  /** Token ids in depth-first order: every subtree is a contiguous run. */
  readonly order: Int32Array;
  /** Ids are 0 … vocabSize − 1. */
  readonly vocabSize: number;
  private readonly bytes: Uint8Array;
  private readonly byteStart: Int32Array;

  /** `tokens[id]` = the bytes of token id, or null for tokens never to be generated as text. */
  constructor(tokens: ReadonlyArray<Uint8Array | null>) {
    this.vocabSize = tokens.length;
    this.byteStart = new Int32Array(tokens.length + 1);
    tokens.forEach((t, id) => (this.byteStart[id + 1] = this.byteStart[id]! + (t?.length ?? 0)));
    this.bytes = new Uint8Array(this.byteStart[tokens.length]!);
    tokens.forEach((t, id) => t && this.bytes.set(t, this.byteStart[id]!));

    // Build with objects, then lay the nodes out in depth-first order in typed arrays.
    const root = newNode();
    let size = 0;
    let count = 1;
    tokens.forEach((t, id) => {
      if (!t || t.length === 0) return;
      let node = root;
      for (const b of t) {
        node = child(node, b);
        if (node.fresh) {
          node.fresh = false;
          count++;
        }
      }
      node.ends.push(id);
      size++;
    });
    this.nodes = count;
    this.childStart = new Int32Array(count + 1);
    this.edgeByte = new Uint8Array(count - 1);
    this.edgeNode = new Int32Array(count - 1);
    this.endStart = new Int32Array(count + 1);
    this.endIds = new Int32Array(size);
    this.lo = new Int32Array(count);
    this.hi = new Int32Array(count);
    this.plain = new Uint8Array(count);
    this.height = new Int32Array(count);
    this.order = new Int32Array(size);
    let nextNode = 0;
    let nextEdge = 0;
    let nextEnd = 0;
    let nextToken = 0;
    // Preorder numbering; a node's edges are written when it is numbered, its children's indices filled in as they are.
    const number = (node: ObjNode, byte: number): number => {
      const n = nextNode++;
      this.endStart[n] = nextEnd;
      for (const id of node.ends) this.endIds[nextEnd++] = id;
      this.endStart[n + 1] = nextEnd;
      this.lo[n] = nextToken;
      for (const id of node.ends) this.order[nextToken++] = id;
      const first = nextEdge;
      nextEdge += node.kids.length;
      this.childStart[n] = first;
      let plain = byte < 0 || isPlainStringByte(byte);
      let height = 0;
      node.kids.forEach((k, i) => {
        const c = number(k, node.bytes[i]!);
        this.edgeByte[first + i] = node.bytes[i]!;
        this.edgeNode[first + i] = c;
        plain &&= this.plain[c] === 1;
        height = Math.max(height, this.height[c]!);
      });
      this.childStart[n + 1] = first + node.kids.length;
      this.hi[n] = nextToken;
      this.plain[n] = plain ? 1 : 0;
      this.height[n] = height + 1;
      return n;
    };
    number(root, -1);
  }

  /** The bytes of token id (empty for special tokens and ids past the tokenizer). */
  bytesOf(id: number): Uint8Array {
    return this.bytes.subarray(this.byteStart[id]!, this.byteStart[id + 1]!);
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

/** A node while the trie is built. */
interface ObjNode {
  bytes: number[];
  kids: ObjNode[];
  ends: number[];
  /** Just created (not yet counted). */
  fresh: boolean;
}

function newNode(): ObjNode {
  return { bytes: [], kids: [], ends: [], fresh: true };
}

function child(node: ObjNode, b: number): ObjNode {
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
