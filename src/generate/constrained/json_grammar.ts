/**
 * A JSON grammar: the set of documents a constrained generation may write,
 * as a small tree of rules (compiled from a JSON Schema by json_schema.ts,
 * or built by hand for `json_object` and tool calls). The automaton in
 * json_automaton.ts walks it one byte at a time.
 *
 * Output is compact JSON (what JSON.stringify writes: no whitespace between
 * tokens). That is the whitespace policy: a model cannot pad a document
 * with blanks forever, and every document is as short as it can be.
 * Object properties come in the schema's order (optional ones may be left
 * out), as OpenAI's structured outputs write them.
 */

export type GrammarNode = ObjectRule | ArrayRule | StringRule | NumberRule | LiteralRule | AnyOfRule | AnyRule | SwitchRule | SequenceRule;

export interface PropertyRule {
  name: string;
  /** The bytes `"name":` — the key as it is written, colon included. */
  key: Uint8Array;
  value: GrammarNode;
  required: boolean;
}

export interface ObjectRule {
  kind: 'object';
  /** Listed properties, written in this order; empty for a free-form object. */
  properties: PropertyRule[];
  /** Free-form objects only (no listed properties): any string keys, each value by this rule. */
  additional: GrammarNode | null;
}

export interface ArrayRule {
  kind: 'array';
  items: GrammarNode;
  minItems: number;
  /** Infinity when unbounded. */
  maxItems: number;
}

/** A string; lengths count characters (code points), as JSON Schema does. */
export interface StringRule {
  kind: 'string';
  minLength: number;
  maxLength: number;
}

/**
 * A number without exponent: `-?(0|[1-9][0-9]*)(\.[0-9]+)?`, at most
 * MAX_DIGITS digits in each part, so that it parses to the number written
 * (a 400-digit integer parses to Infinity, which is not an integer).
 */
export interface NumberRule {
  kind: 'number';
  integer: boolean;
}
export const MAX_DIGITS = 15;

/** One of a few fixed JSON texts: enum, const, true/false, null. */
export interface LiteralRule {
  kind: 'literal';
  texts: Uint8Array[];
}

/** One of several rules; they start with different bytes, so the first byte decides (json_schema.ts checks). */
export interface AnyOfRule {
  kind: 'anyOf';
  options: GrammarNode[];
}

/** Any JSON value, objects and arrays nested at most `depth` deep. */
export interface AnyRule {
  kind: 'any';
  depth: number;
}

/**
 * Fixed bytes that choose what follows: case i's prefix, then its `then`.
 * No prefix is a prefix of another. A tool call is one: `{"name":"f","arguments":`
 * then f's parameters.
 */
export interface SwitchRule {
  kind: 'switch';
  cases: Array<{ prefix: Uint8Array; then: GrammarNode }>;
}

/** Rules one after the other. */
export interface SequenceRule {
  kind: 'sequence';
  parts: GrammarNode[];
}

const utf8 = new TextEncoder();
export const bytesOf = (s: string): Uint8Array => utf8.encode(s);

export const literal = (...values: unknown[]): LiteralRule => ({ kind: 'literal', texts: values.map((v) => bytesOf(JSON.stringify(v))) });
/** Fixed text (not a JSON value): markers around a tool call. */
export const fixedText = (text: string): LiteralRule => ({ kind: 'literal', texts: [bytesOf(text)] });

export function property(name: string, value: GrammarNode, required: boolean): PropertyRule {
  return { name, key: bytesOf(`${JSON.stringify(name)}:`), value, required };
}

/** Objects and arrays nest this deep in `json_object` documents; deeper values are scalars. */
export const ANY_DEPTH = 6;
export const anyValue = (depth = ANY_DEPTH): AnyRule => ({ kind: 'any', depth });
/** `{"type": "json_object"}`: any JSON object. */
export const anyObject = (): ObjectRule => ({ kind: 'object', properties: [], additional: anyValue(ANY_DEPTH - 1) });

const anyCache = new Map<number, GrammarNode>();
/** What `any` at a depth can be, as ordinary rules (built once per depth). */
export function anyChoices(depth: number): AnyOfRule {
  let r = anyCache.get(depth) as AnyOfRule | undefined;
  if (r) return r;
  const scalars: GrammarNode[] = [{ kind: 'string', minLength: 0, maxLength: Infinity }, { kind: 'number', integer: false }, literal(true, false, null)];
  const nested: GrammarNode[] = depth > 0 ? [{ kind: 'object', properties: [], additional: anyValue(depth - 1) }, { kind: 'array', items: anyValue(depth - 1), minItems: 0, maxItems: Infinity }] : [];
  r = { kind: 'anyOf', options: [...nested, ...scalars] };
  anyCache.set(depth, r);
  return r;
}

/** The bytes a document of this rule may start with. */
export function firstBytes(node: GrammarNode): Set<number> {
  const ch = (s: string) => new Set([...s].map((c) => c.charCodeAt(0)));
  switch (node.kind) {
    case 'object':
      return ch('{');
    case 'array':
      return ch('[');
    case 'string':
      return ch('"');
    case 'number':
      return ch('-0123456789');
    case 'literal':
      return new Set(node.texts.map((t) => t[0]!));
    case 'anyOf':
      return new Set(node.options.flatMap((o) => [...firstBytes(o)]));
    case 'any':
      return firstBytes(anyChoices(node.depth));
    case 'switch':
      return new Set(node.cases.map((c) => c.prefix[0]!));
    case 'sequence':
      return firstBytes(node.parts[0]!);
  }
}

const minCache = new WeakMap<GrammarNode, number>();

/** The length in bytes of the shortest document of this rule (what closing it in time needs). */
export function minBytes(node: GrammarNode): number {
  const known = minCache.get(node);
  if (known !== undefined) return known;
  const n = computeMinBytes(node);
  minCache.set(node, n);
  return n;
}

function computeMinBytes(node: GrammarNode): number {
  switch (node.kind) {
    case 'object':
      return 1 + requiredCost(node, 0) + 1;
    case 'array':
      return node.minItems === 0 ? 2 : 2 + node.minItems * minBytes(node.items) + node.minItems - 1;
    case 'string':
      return 2 + node.minLength;
    case 'number':
      return 1;
    case 'literal':
      return Math.min(...node.texts.map((t) => t.length));
    case 'anyOf':
      return Math.min(...node.options.map(minBytes));
    case 'any':
      return 1; // a digit
    case 'switch':
      return Math.min(...node.cases.map((c) => c.prefix.length + minBytes(c.then)));
    case 'sequence':
      return node.parts.reduce((s, p) => s + minBytes(p), 0);
  }
}

/** Bytes the required properties from index `from` on need, commas between them included (no braces). */
export function requiredCost(node: ObjectRule, from: number): number {
  let cost = 0;
  let count = 0;
  for (let j = from; j < node.properties.length; j++) {
    const p = node.properties[j]!;
    if (!p.required) continue;
    cost += p.key.length + minBytes(p.value);
    count++;
  }
  return count > 0 ? cost + count - 1 : 0;
}

/** Whether a required property remains from index `from` on. */
export function requiredFrom(node: ObjectRule, from: number): boolean {
  for (let j = from; j < node.properties.length; j++) if (node.properties[j]!.required) return true;
  return false;
}
