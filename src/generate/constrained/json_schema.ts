import { UserError } from '../../util/errors.js';
import { anyValue, firstBytes, literal, property, type GrammarNode, type PropertyRule } from './json_grammar.js';

/**
 * Compile a JSON Schema into a grammar (json_grammar.ts). Supported:
 * type (one or a list), properties, required, additionalProperties, enum,
 * const, items, minItems, maxItems, minLength, maxLength, anyOf and oneOf
 * (when their alternatives are of different JSON types, so the first byte
 * decides), and the annotations that do not constrain (title, description,
 * default, examples, $schema, $id, $comment). Any other keyword is refused
 * by name — a constraint silently ignored would let through documents the
 * schema rejects.
 *
 * With `strict` (OpenAI's `"strict": true`) every object must say
 * `"additionalProperties": false`.
 */

export interface SchemaOptions {
  strict?: boolean;
}

const ANNOTATIONS = new Set(['title', 'description', 'default', 'examples', '$schema', '$id', '$comment', 'deprecated', 'readOnly', 'writeOnly']);
const KEYWORDS = new Set(['type', 'properties', 'required', 'additionalProperties', 'enum', 'const', 'items', 'minItems', 'maxItems', 'minLength', 'maxLength', 'anyOf', 'oneOf']);
const TYPES = ['object', 'array', 'string', 'number', 'integer', 'boolean', 'null'] as const;
type JsonType = (typeof TYPES)[number];

/** The message names the place in the schema as a JSON pointer (#/properties/age). */
export class SchemaError extends UserError {
  constructor(
    readonly pointer: string,
    message: string,
  ) {
    super(`JSON schema at ${pointer}: ${message}`);
    this.name = 'SchemaError';
  }
}

export function compileJsonSchema(schema: unknown, opts: SchemaOptions = {}): GrammarNode {
  return compile(schema, '#', opts.strict ?? false);
}

type Json = Record<string, unknown>;

function compile(schema: unknown, at: string, strict: boolean): GrammarNode {
  if (schema === true) return anyValue();
  if (schema === false) throw new SchemaError(at, 'the schema `false` accepts no document');
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new SchemaError(at, 'a schema must be an object (or true)');
  const s = schema as Json;
  for (const k of Object.keys(s)) {
    if (!KEYWORDS.has(k) && !ANNOTATIONS.has(k)) {
      throw new SchemaError(at, `keyword "${k}" is not supported by constrained decoding (supported: ${[...KEYWORDS].join(', ')})`);
    }
  }
  if (s.const !== undefined) return literal(s.const);
  if (s.enum !== undefined) return enumRule(s, at);
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives !== undefined) {
    if (s.anyOf !== undefined && s.oneOf !== undefined) throw new SchemaError(at, 'use anyOf or oneOf, not both');
    const word = s.anyOf !== undefined ? 'anyOf' : 'oneOf';
    if (s.type !== undefined || s.properties !== undefined || s.items !== undefined) throw new SchemaError(at, `${word} beside type, properties or items is not supported: put them inside each alternative`);
    if (!Array.isArray(alternatives) || alternatives.length === 0) throw new SchemaError(`${at}/${word}`, 'must be a non-empty array of schemas');
    return distinct(
      alternatives.map((a, i) => compile(a, `${at}/${word}/${i}`, strict)),
      `${at}/${word}`,
    );
  }
  const types = typesOf(s, at);
  if (types.length === 0) return anyValue();
  // integer is a kind of number: both allowed means number.
  const kinds = types.includes('number') ? types.filter((t) => t !== 'integer') : types;
  return distinct(
    kinds.map((t) => typed(t, s, at, strict)),
    at,
  );
}

/** The schema's types: `type`, or guessed from the keywords present (properties → object, items → array). */
function typesOf(s: Json, at: string): JsonType[] {
  if (s.type === undefined) {
    if (s.properties !== undefined || s.required !== undefined || s.additionalProperties !== undefined) return ['object'];
    if (s.items !== undefined || s.minItems !== undefined || s.maxItems !== undefined) return ['array'];
    if (s.minLength !== undefined || s.maxLength !== undefined) return ['string'];
    return [];
  }
  const list = Array.isArray(s.type) ? s.type : [s.type];
  if (list.length === 0) throw new SchemaError(`${at}/type`, 'an empty list of types accepts no document');
  for (const t of list) if (!TYPES.includes(t as JsonType)) throw new SchemaError(`${at}/type`, `unknown type ${JSON.stringify(t)} (one of ${TYPES.join(', ')})`);
  return [...new Set(list as JsonType[])];
}

function typed(t: JsonType, s: Json, at: string, strict: boolean): GrammarNode {
  switch (t) {
    case 'object':
      return objectRule(s, at, strict);
    case 'array': {
      const minItems = count(s.minItems, `${at}/minItems`, 0);
      const maxItems = count(s.maxItems, `${at}/maxItems`, Infinity);
      if (minItems > maxItems) throw new SchemaError(at, `minItems ${minItems} > maxItems ${maxItems}`);
      const items = s.items === undefined ? anyValue() : compile(s.items, `${at}/items`, strict);
      return { kind: 'array', items, minItems, maxItems };
    }
    case 'string': {
      const minLength = count(s.minLength, `${at}/minLength`, 0);
      const maxLength = count(s.maxLength, `${at}/maxLength`, Infinity);
      if (minLength > maxLength) throw new SchemaError(at, `minLength ${minLength} > maxLength ${maxLength}`);
      return { kind: 'string', minLength, maxLength };
    }
    case 'number':
    case 'integer':
      return { kind: 'number', integer: t === 'integer' };
    case 'boolean':
      return literal(true, false);
    case 'null':
      return literal(null);
  }
}

function objectRule(s: Json, at: string, strict: boolean): GrammarNode {
  const props = s.properties ?? {};
  if (typeof props !== 'object' || props === null || Array.isArray(props)) throw new SchemaError(`${at}/properties`, 'must be an object of schemas');
  const required = s.required ?? [];
  if (!Array.isArray(required) || required.some((r) => typeof r !== 'string')) throw new SchemaError(`${at}/required`, 'must be an array of property names');
  const names = Object.keys(props);
  for (const r of required as string[]) if (!names.includes(r)) throw new SchemaError(`${at}/required`, `"${r}" is required but not in properties`);
  const extra = s.additionalProperties;
  if (strict && extra !== false) throw new SchemaError(at, 'strict mode needs "additionalProperties": false on every object');
  const properties: PropertyRule[] = names.map((n) => property(n, compile((props as Json)[n], `${at}/properties/${pointerPart(n)}`, strict), (required as string[]).includes(n)));
  if (properties.length > 0) {
    // Extra keys are allowed or not; either way the listed ones are all a document needs.
    if (extra !== undefined && typeof extra !== 'boolean') compile(extra, `${at}/additionalProperties`, strict);
    return { kind: 'object', properties, additional: null };
  }
  if (extra === false) return { kind: 'object', properties: [], additional: null }; // only {}
  const additional = extra === undefined || extra === true ? anyValue(5) : compile(extra, `${at}/additionalProperties`, strict);
  return { kind: 'object', properties: [], additional };
}

function enumRule(s: Json, at: string): GrammarNode {
  if (!Array.isArray(s.enum) || s.enum.length === 0) throw new SchemaError(`${at}/enum`, 'must be a non-empty array');
  const types = s.type === undefined ? null : typesOf(s, at);
  const values = types === null ? s.enum : s.enum.filter((v) => types.includes(jsonType(v)) || (types.includes('number') && jsonType(v) === 'integer'));
  if (values.length === 0) throw new SchemaError(`${at}/enum`, `no value is of type ${types!.join(' or ')}`);
  return literal(...values);
}

function jsonType(v: unknown): JsonType {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v as JsonType;
}

function count(v: unknown, at: string, absent: number): number {
  if (v === undefined) return absent;
  if (!(typeof v === 'number' && Number.isInteger(v) && v >= 0)) throw new SchemaError(at, 'must be an integer ≥ 0');
  return v;
}

/** One alternative, or several that start with different bytes (so that the first byte picks one). */
function distinct(options: GrammarNode[], at: string): GrammarNode {
  if (options.length === 1) return options[0]!;
  const seen = new Map<number, number>();
  options.forEach((o, i) => {
    for (const b of firstBytes(o)) {
      const j = seen.get(b);
      if (j !== undefined && j !== i) {
        throw new SchemaError(at, `alternatives ${j} and ${i} can both start with ${JSON.stringify(String.fromCharCode(b))}: anyOf/oneOf/type lists are supported only between different JSON types`);
      }
      seen.set(b, i);
    }
  });
  return { kind: 'anyOf', options };
}

const pointerPart = (name: string) => name.replace(/~/g, '~0').replace(/\//g, '~1');
