import type { Tokenizer } from '../../tokenizers/tokenizer.js';
import { advanceAll, advance, startState, StringFrame, type ParseStack } from './json_automaton.js';
import { anyObject, minBytes, type GrammarNode } from './json_grammar.js';
import { compileJsonSchema, type SchemaOptions } from './json_schema.js';
import { tokenTrieFor, type TokenTrie } from './token_trie.js';

/**
 * What the sampler should do with a row of scores after masking: sample
 * from them; end the row (the document is finished, nothing may follow);
 * or give up (no token of the vocabulary can continue the document).
 */
export type MaskVerdict = 'sample' | 'finished' | 'stuck';

/**
 * A grammar bound to a vocabulary: the shareable part of constrained
 * decoding (compile once, use for every row and request). Each generated
 * document gets its own `start()`.
 */
export class JsonConstraint {
  /** Scratch for the mask: stamp[id] === generation marks id allowed (no clearing between steps). */
  private readonly stamp: Int32Array;
  private generation = 0;

  constructor(
    readonly grammar: GrammarNode,
    readonly trie: TokenTrie,
    /** End-of-text / end-of-turn ids: allowed once the document is whole. */
    readonly stopTokens: readonly number[] = [],
  ) {
    this.stamp = new Int32Array(trie.vocabSize);
  }

  /** A JSON Schema (SchemaError when a keyword is not supported) for a tokenizer and a model's vocabulary. */
  static fromSchema(schema: unknown, tokenizer: Tokenizer, vocabSize: number, stopTokens: readonly number[] = [], opts: SchemaOptions = {}): JsonConstraint {
    return new JsonConstraint(compileJsonSchema(schema, opts), tokenTrieFor(tokenizer, vocabSize), stopTokens);
  }

  /** `{"type": "json_object"}`: any JSON object. */
  static anyObject(tokenizer: Tokenizer, vocabSize: number, stopTokens: readonly number[] = []): JsonConstraint {
    return new JsonConstraint(anyObject(), tokenTrieFor(tokenizer, vocabSize), stopTokens);
  }

  /** Bytes of the shortest document: generation needs at least this many tokens (one byte each at worst). */
  get minBytes(): number {
    return minBytes(this.grammar);
  }

  start(): ConstrainedDocument {
    return new ConstrainedDocument(this, startState(this.grammar), false);
  }

  /**
   * A document that may also not be one: the first token either begins it
   * (then the rest is constrained) or is any token that cannot begin it
   * (then the text is free). A tool call under tool_choice "auto" is one.
   */
  startOptional(): ConstrainedDocument {
    return new ConstrainedDocument(this, startState(this.grammar), true);
  }

  /**
   * Mark the allowed tokens of `state` (walking the trie once from it) and
   * return a fresh generation number: allowed ids have stamp === it.
   * `limit`: bytes the document may still need after this token — a token
   * that leaves more than that unwritable in the tokens left is not allowed.
   */
  markAllowed(state: ParseStack, limit: number): { stamp: Int32Array; generation: number; count: number } {
    const gen = ++this.generation;
    const stamp = this.stamp;
    const { order, childStart, edgeByte, edgeNode, endStart, endIds, lo, hi, plain, height } = this.trie;
    let count = 0;
    const walk = (node: number, s: ParseStack): void => {
      // Inside a string every plain character keeps the string open and its
      // shortest completion as short: plain subtrees that fit are allowed whole.
      const room = s.top instanceof StringFrame && s.minBytes <= limit ? s.top.room : -1;
      for (let e = childStart[node]!; e < childStart[node + 1]!; e++) {
        const k = edgeNode[e]!;
        if (plain[k] === 1 && height[k]! <= room) {
          for (let j = lo[k]!; j < hi[k]!; j++) stamp[order[j]!] = gen;
          count += hi[k]! - lo[k]!;
          continue;
        }
        const next = advance(s, edgeByte[e]!);
        if (!next) continue;
        if (endStart[k + 1]! > endStart[k]! && next.minBytes <= limit) {
          for (let j = endStart[k]!; j < endStart[k + 1]!; j++) stamp[endIds[j]!] = gen;
          count += endStart[k + 1]! - endStart[k]!;
        }
        if (childStart[k + 1]! > childStart[k]!) walk(k, next);
      }
    };
    walk(0, state);
    if (state.complete) {
      for (const id of this.stopTokens) stamp[id] = gen;
      count += this.stopTokens.length;
    }
    return { stamp, generation: gen, count };
  }
}

/** One document being generated under a JsonConstraint. */
export class ConstrainedDocument {
  /** An optional document whose first token did not begin it: the text is free. */
  free = false;

  constructor(
    readonly constraint: JsonConstraint,
    private state: ParseStack,
    /** Still before the first token of an optional document. */
    private optional: boolean,
  ) {}

  /** The text so far is a whole document (it may still continue, as a top-level number may). */
  get complete(): boolean {
    return this.state.complete;
  }

  /** Nothing more may be written. */
  get finished(): boolean {
    return this.state.finished;
  }

  /** Fewest bytes that complete the document. */
  get minBytesLeft(): number {
    return this.state.minBytes;
  }

  /**
   * The allowed token ids, ascending (for tests and tools; the sampler uses mask).
   * `remaining`: tokens that may still be generated, this one included.
   */
  allowed(remaining = Infinity): number[] {
    const { stamp, generation } = this.constraint.markAllowed(this.state, remaining - 1);
    const out: number[] = [];
    for (let i = 0; i < stamp.length; i++) if (stamp[i] === generation) out.push(i);
    return out;
  }

  /**
   * Set the score of every token that cannot continue the document to
   * −∞ (in place). A finished document needs no token: the row ends.
   */
  mask(logits: Float32Array, remaining = Infinity): MaskVerdict {
    if (this.free) return 'sample';
    if (this.optional) return this.maskOptional(logits, remaining);
    if (this.state.finished) return 'finished';
    const { stamp, generation, count } = this.constraint.markAllowed(this.state, remaining - 1);
    if (count === 0) return this.state.complete ? 'finished' : 'stuck';
    const n = Math.min(logits.length, stamp.length);
    for (let i = 0; i < n; i++) if (stamp[i] !== generation) logits[i] = -Infinity;
    for (let i = n; i < logits.length; i++) logits[i] = -Infinity;
    return 'sample';
  }

  /**
   * Before an optional document: any token that cannot begin it is free
   * text; of those that can, only the ones after which the document still
   * fits in the tokens left.
   */
  private maskOptional(logits: Float32Array, remaining: number): MaskVerdict {
    const begins = this.allowed(Infinity);
    if (remaining === Infinity) return 'sample';
    const fits = new Set(this.allowed(remaining));
    for (const id of begins) if (!fits.has(id)) logits[id] = -Infinity;
    return 'sample';
  }

  /** Move past a generated token; stop tokens end the document and change nothing. An id the mask did not allow throws. */
  accept(id: number): void {
    if (this.free || this.constraint.stopTokens.includes(id)) return;
    const bytes = id >= 0 && id < this.constraint.trie.vocabSize ? this.constraint.trie.bytesOf(id) : null;
    const next = bytes && bytes.length > 0 ? advanceAll(this.state, bytes) : null;
    if (this.optional) {
      this.optional = false;
      if (!next) {
        this.free = true;
        return;
      }
    }
    if (!next) throw new Error(`constrained decoding: token ${id} cannot continue the document`);
    this.state = next;
  }
}
