import { anyChoices, MAX_DIGITS, minBytes, requiredCost, requiredFrom, type GrammarNode, type ObjectRule, type PropertyRule } from './json_grammar.js';

/**
 * The automaton that reads a JSON document one byte at a time and says
 * whether each byte may come next under a grammar (json_grammar.ts).
 *
 * Its state is a stack of frames — "inside this object, after key 2", "in
 * a string of at most 20 characters, 7 written" — kept as an immutable
 * linked list, so that trying a byte never disturbs the state it started
 * from: the token mask (token_mask.ts) walks a trie of the vocabulary from
 * one state, branching at every byte, and simply drops the branches that
 * fail. A frame that consumes a byte is replaced by the frames it returns
 * (none when it has just completed); a frame that could end here (a number
 * after a digit) and cannot take the byte hands it to the frame below.
 *
 * Every frame knows the fewest bytes that complete it (`minBytes`), so the
 * stack knows how much a document still needs: the mask uses that to close
 * every document before the token budget runs out.
 */
export interface Frame {
  /** The frames that replace this one after byte `b` (bottom first), or null when `b` cannot come next. */
  consume(b: number): Frame[] | null;
  /** True when the frame's text so far is complete (it may still continue, as a number may). */
  readonly canEnd: boolean;
  /** The fewest bytes that complete it. */
  readonly minBytes: number;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const LBRACE = 0x7b;
const RBRACE = 0x7d;
const LBRACKET = 0x5b;
const RBRACKET = 0x5d;
const MINUS = 0x2d;
const DOT = 0x2e;
const ZERO = 0x30;
const NINE = 0x39;
const isDigit = (b: number) => b >= ZERO && b <= NINE;

/** A byte that stands for itself inside a JSON string: printable ASCII but `"` and `\`. */
export const isPlainStringByte = (b: number): boolean => b >= 0x20 && b < 0x7f && b !== QUOTE && b !== BACKSLASH;

/** The state: a stack of frames over DONE, which takes no byte. */
export class ParseStack {
  readonly minBytes: number;
  /** Every frame could end here: the document so far is a whole document. */
  readonly complete: boolean;

  constructor(
    readonly top: Frame,
    readonly below: ParseStack | null,
  ) {
    this.minBytes = top.minBytes + (below?.minBytes ?? 0);
    this.complete = top.canEnd && (below?.complete ?? true);
  }

  /** Nothing more can be written: the document is finished. */
  get finished(): boolean {
    return this.below === null;
  }
}

const DONE_FRAME: Frame = { consume: () => null, canEnd: true, minBytes: 0 };
export const DONE = new ParseStack(DONE_FRAME, null);

/** The state before the first byte of a document of `node`. */
export function startState(node: GrammarNode): ParseStack {
  return new ParseStack(new ValueFrame(node), DONE);
}

/** The state after byte `b`, or null when `b` cannot come next. */
export function advance(state: ParseStack, b: number): ParseStack | null {
  let s = state;
  for (;;) {
    const next = s.top.consume(b);
    if (next) {
      let t = s.below!;
      for (const f of next) t = new ParseStack(f, t);
      return t;
    }
    // A frame that may end here hands the byte to the one below (after a number: `,` or `}`).
    if (!s.top.canEnd || s.below === null) return null;
    s = s.below;
  }
}

/** The state after all of `bytes`, or null. */
export function advanceAll(state: ParseStack, bytes: ArrayLike<number>): ParseStack | null {
  let s: ParseStack | null = state;
  for (let i = 0; i < bytes.length && s; i++) s = advance(s, bytes[i]!);
  return s;
}

/** The frames that replace "a value of `node` comes next" after its first byte `b`. */
function startValue(node: GrammarNode, b: number): Frame[] | null {
  switch (node.kind) {
    case 'object':
      return b === LBRACE ? [new ObjectFrame(node, 'open', 0)] : null;
    case 'array':
      return b === LBRACKET ? [new ArrayFrame(node.items, node.minItems, node.maxItems, 'open', 0)] : null;
    case 'string':
      return b === QUOTE ? [new StringFrame(node.minLength, node.maxLength, 0, 0, 0, 0)] : null;
    case 'number':
      return new NumberFrame(node.integer, 'start', 0).consume(b);
    case 'literal':
      return new PrefixFrame(node.texts, null, node.texts.map((_, i) => i), 0).consume(b);
    case 'anyOf':
      for (const o of node.options) {
        const r = startValue(o, b);
        if (r) return r; // options start with different bytes: at most one takes b
      }
      return null;
    case 'any':
      return startValue(anyChoices(node.depth), b);
    case 'switch':
      return new PrefixFrame(
        node.cases.map((c) => c.prefix),
        node.cases.map((c) => c.then),
        node.cases.map((_, i) => i),
        0,
      ).consume(b);
    case 'sequence':
      return startSequence(node.parts, 0, b);
  }
}

function startSequence(parts: GrammarNode[], i: number, b: number): Frame[] | null {
  const r = startValue(parts[i]!, b);
  if (!r) return null;
  return i + 1 < parts.length ? [new SequenceFrame(parts, i + 1), ...r] : r;
}

/** A value of `node` comes next. */
class ValueFrame implements Frame {
  readonly canEnd = false;
  readonly minBytes: number;
  constructor(private readonly node: GrammarNode) {
    this.minBytes = minBytes(node);
  }
  consume(b: number): Frame[] | null {
    return startValue(this.node, b);
  }
}

/** parts[i], parts[i+1], … come next. */
class SequenceFrame implements Frame {
  readonly canEnd = false;
  readonly minBytes: number;
  constructor(
    private readonly parts: GrammarNode[],
    private readonly i: number,
  ) {
    let n = 0;
    for (let j = i; j < parts.length; j++) n += minBytes(parts[j]!);
    this.minBytes = n;
  }
  consume(b: number): Frame[] | null {
    return startSequence(this.parts, this.i, b);
  }
}

type ObjectPhase = 'open' | 'comma' | 'key' | 'colon' | 'after';

/**
 * Inside an object. With listed properties: `index` is the next property
 * that may be written (earlier ones are done or skipped); in phase 'key'
 * the bytes of the key are matched against `candidates` (the properties
 * from `index` up to and including the next required one). Free-form
 * (no listed properties): any string key, then `additional`'s value;
 * `index` counts the keys written.
 */
class ObjectFrame implements Frame {
  readonly canEnd = false;
  readonly minBytes: number;

  constructor(
    private readonly node: ObjectRule,
    private readonly phase: ObjectPhase,
    private readonly index: number,
    private readonly candidates: readonly number[] = [],
    private readonly pos = 0,
  ) {
    this.minBytes = this.computeMinBytes();
  }

  private get free(): boolean {
    return this.node.properties.length === 0;
  }

  /** Bytes after a property's value, from property `i` on: `}`, or `,` then the required ones then `}`. */
  private tail(i: number): number {
    return requiredFrom(this.node, i) ? 1 + requiredCost(this.node, i) + 1 : 1;
  }

  private entryCost(p: PropertyRule): number {
    return p.key.length + minBytes(p.value);
  }

  private computeMinBytes(): number {
    const props = this.node.properties;
    if (this.free) {
      const entry = 3 + minBytes(this.node.additional!); // `"":` and the value
      return { open: 1, comma: entry + 1, key: 0, colon: entry - 2 + 1, after: 1 }[this.phase];
    }
    switch (this.phase) {
      case 'open':
        return requiredCost(this.node, this.index) + 1;
      case 'comma': {
        if (requiredFrom(this.node, this.index)) return requiredCost(this.node, this.index) + 1;
        let best = Infinity;
        for (let j = this.index; j < props.length; j++) best = Math.min(best, this.entryCost(props[j]!));
        return best + 1;
      }
      case 'key': {
        let best = Infinity;
        for (const j of this.candidates) best = Math.min(best, this.entryCost(props[j]!) - this.pos + this.tail(j + 1));
        return best;
      }
      case 'colon':
        return 0; // not used with listed properties
      case 'after':
        return this.tail(this.index);
    }
  }

  consume(b: number): Frame[] | null {
    const props = this.node.properties;
    switch (this.phase) {
      case 'open':
      case 'comma':
        if (b === RBRACE && this.phase === 'open' && !requiredFrom(this.node, this.index)) return [];
        if (b !== QUOTE) return null;
        if (this.free) {
          if (this.node.additional === null) return null;
          return [new ObjectFrame(this.node, 'colon', this.index), new StringFrame(0, Infinity, 0, 0, 0, 0)];
        }
        return this.matchKey(this.openCandidates(), 1);
      case 'key':
        return this.matchKey(
          this.candidates.filter((j) => props[j]!.key[this.pos] === b),
          this.pos + 1,
        );
      case 'colon':
        return b === COLON ? [new ObjectFrame(this.node, 'after', this.index + 1), new ValueFrame(this.node.additional!)] : null;
      case 'after':
        if (b === RBRACE && !requiredFrom(this.node, this.index)) return [];
        if (b === COMMA && (this.free || this.index < props.length)) return [new ObjectFrame(this.node, 'comma', this.index)];
        return null;
    }
  }

  /** Properties that may be written next: from `index` up to the first required one. */
  private openCandidates(): number[] {
    const out: number[] = [];
    for (let j = this.index; j < this.node.properties.length; j++) {
      out.push(j);
      if (this.node.properties[j]!.required) break;
    }
    return out;
  }

  private matchKey(candidates: number[], pos: number): Frame[] | null {
    if (candidates.length === 0) return null;
    // Keys are quoted and end with `":`, so a whole key is never the start of another.
    const whole = candidates.find((j) => this.node.properties[j]!.key.length === pos);
    if (whole !== undefined) return [new ObjectFrame(this.node, 'after', whole + 1), new ValueFrame(this.node.properties[whole]!.value)];
    return [new ObjectFrame(this.node, 'key', this.index, candidates, pos)];
  }
}

/** Inside an array: `count` items written; 'open' just after `[`, 'comma' after `,`, 'after' after an item. */
class ArrayFrame implements Frame {
  readonly canEnd = false;
  readonly minBytes: number;

  constructor(
    private readonly items: GrammarNode,
    private readonly minItems: number,
    private readonly maxItems: number,
    private readonly phase: 'open' | 'comma' | 'after',
    private readonly count: number,
  ) {
    const item = minBytes(items);
    const left = Math.max(0, minItems - count);
    if (phase === 'open') this.minBytes = left === 0 ? 1 : left * item + left - 1 + 1;
    else if (phase === 'comma') this.minBytes = Math.max(1, left) * (item + 1);
    else this.minBytes = left * (item + 1) + 1;
  }

  consume(b: number): Frame[] | null {
    if (this.phase === 'after') {
      if (b === RBRACKET && this.count >= this.minItems) return [];
      if (b === COMMA && this.count < this.maxItems) return [new ArrayFrame(this.items, this.minItems, this.maxItems, 'comma', this.count)];
      return null;
    }
    if (this.phase === 'open' && b === RBRACKET) return this.minItems === 0 ? [] : null;
    if (this.count >= this.maxItems) return null;
    const r = startValue(this.items, b);
    return r ? [new ArrayFrame(this.items, this.minItems, this.maxItems, 'after', this.count + 1), ...r] : null;
  }
}

/**
 * Inside a string, after the opening quote: `length` characters written.
 * `mode` 1: just after a backslash. `cont` > 0: inside a multi-byte UTF-8
 * character, `cont` bytes to go, the next one in [lo, hi] (the ranges of
 * RFC 3629, so that the bytes always decode to the characters counted).
 * Escapes are the one-letter ones (no \u).
 */
export class StringFrame implements Frame {
  readonly canEnd = false;
  readonly minBytes: number;

  constructor(
    private readonly minLength: number,
    private readonly maxLength: number,
    private readonly length: number,
    private readonly mode: 0 | 1,
    private readonly cont: number,
    private readonly lo: number,
    private readonly hi = 0xbf,
  ) {
    const chars = Math.max(0, minLength - length);
    this.minBytes = mode === 1 ? 1 + Math.max(0, chars - 1) + 1 : cont + chars + 1;
  }

  /** Plain characters (isPlainStringByte) that may still be added one after the other; -1 inside an escape or a character. */
  get room(): number {
    return this.mode === 0 && this.cont === 0 ? this.maxLength - this.length : -1;
  }

  private next(length: number, mode: 0 | 1 = 0, cont = 0, lo = 0x80, hi = 0xbf): Frame[] {
    return [new StringFrame(this.minLength, this.maxLength, length, mode, cont, lo, hi)];
  }

  consume(b: number): Frame[] | null {
    if (this.mode === 1) return '"\\/bfnrt'.includes(String.fromCharCode(b)) ? this.next(this.length) : null;
    if (this.cont > 0) return b >= this.lo && b <= this.hi ? this.next(this.length, 0, this.cont - 1) : null;
    if (b === QUOTE) return this.length >= this.minLength ? [] : null;
    if (this.length >= this.maxLength || b < 0x20) return null;
    if (b === BACKSLASH) return this.next(this.length + 1, 1);
    if (b < 0x80) return this.next(this.length + 1);
    // The first byte of a multi-byte character: how many follow, and the range of the next.
    if (b >= 0xc2 && b <= 0xdf) return this.next(this.length + 1, 0, 1);
    if (b === 0xe0) return this.next(this.length + 1, 0, 2, 0xa0, 0xbf);
    if (b === 0xed) return this.next(this.length + 1, 0, 2, 0x80, 0x9f);
    if (b >= 0xe1 && b <= 0xef) return this.next(this.length + 1, 0, 2);
    if (b === 0xf0) return this.next(this.length + 1, 0, 3, 0x90, 0xbf);
    if (b >= 0xf1 && b <= 0xf3) return this.next(this.length + 1, 0, 3);
    if (b === 0xf4) return this.next(this.length + 1, 0, 3, 0x80, 0x8f);
    return null;
  }
}

type NumberPhase = 'start' | 'minus' | 'zero' | 'int' | 'dot' | 'frac';

/** A number being written; `digits` counts the digits of the current part. */
class NumberFrame implements Frame {
  readonly canEnd: boolean;
  readonly minBytes: number;

  constructor(
    private readonly integer: boolean,
    private readonly phase: NumberPhase,
    private readonly digits: number,
  ) {
    this.canEnd = phase === 'zero' || phase === 'int' || phase === 'frac';
    this.minBytes = this.canEnd ? 0 : 1;
  }

  private to(phase: NumberPhase, digits: number): Frame[] {
    return [new NumberFrame(this.integer, phase, digits)];
  }

  consume(b: number): Frame[] | null {
    switch (this.phase) {
      case 'start':
      case 'minus':
        if (b === MINUS && this.phase === 'start') return this.to('minus', 0);
        if (b === ZERO) return this.to('zero', 1);
        return isDigit(b) ? this.to('int', 1) : null;
      case 'zero':
      case 'int':
        if (this.phase === 'int' && isDigit(b) && this.digits < MAX_DIGITS) return this.to('int', this.digits + 1);
        return b === DOT && !this.integer ? this.to('dot', 0) : null;
      case 'dot':
        return isDigit(b) ? this.to('frac', 1) : null;
      case 'frac':
        return isDigit(b) && this.digits < MAX_DIGITS ? this.to('frac', this.digits + 1) : null;
    }
  }
}

/**
 * Matching one of several fixed byte strings, `pos` bytes in; `alive` are
 * those that still match. Without `thens` these are literals (enum values):
 * the frame may end as soon as one is whole. With them (a switch), a whole
 * prefix i is replaced by a value of thens[i].
 */
class PrefixFrame implements Frame {
  readonly canEnd: boolean;
  readonly minBytes: number;

  constructor(
    private readonly texts: Uint8Array[],
    private readonly thens: GrammarNode[] | null,
    private readonly alive: readonly number[],
    private readonly pos: number,
  ) {
    this.canEnd = thens === null && alive.some((i) => texts[i]!.length === pos);
    let best = Infinity;
    for (const i of alive) best = Math.min(best, texts[i]!.length - pos + (thens ? minBytes(thens[i]!) : 0));
    this.minBytes = best;
  }

  consume(b: number): Frame[] | null {
    const pos = this.pos;
    const alive = this.alive.filter((i) => this.texts[i]!.length > pos && this.texts[i]![pos] === b);
    if (alive.length === 0) return null;
    if (this.thens) {
      const whole = alive.find((i) => this.texts[i]!.length === pos + 1);
      if (whole !== undefined) return [new ValueFrame(this.thens[whole]!)];
    } else if (alive.every((i) => this.texts[i]!.length === pos + 1)) return []; // whole, and nothing longer matches
    return [new PrefixFrame(this.texts, this.thens, alive, pos + 1)];
  }
}
