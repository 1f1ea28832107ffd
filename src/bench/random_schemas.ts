import { Rng } from '../util/rng.js';

/**
 * Random JSON Schemas of the kinds API users send with response_format
 * (objects of a few typed fields, enums, nested objects, arrays with
 * bounds, nullable fields), reproducible from a seed: the workload of the
 * structured-output goal (every answer parses and validates).
 */
export function randomSchema(rng: Rng, depth = 0): Record<string, unknown> {
  return depth === 0 ? objectSchema(rng, depth) : anySchema(rng, depth);
}

/** `count` schemas from `seed`, each a strict object at the top (as OpenAI's strict mode asks). */
export function randomSchemas(count: number, seed = 1): Array<Record<string, unknown>> {
  const rng = new Rng(seed);
  return Array.from({ length: count }, () => randomSchema(rng));
}

const WORDS = ['name', 'age', 'city', 'tags', 'score', 'id', 'active', 'items', 'title', 'count', 'kind', 'price', 'note', 'user', 'when', 'level', 'color', 'size', 'ok', 'data'];
const ENUM_WORDS = ['red', 'green', 'blue', 'small', 'large', 'yes', 'no', 'maybe', 'ünïcode', '日本'];

const pick = <T>(rng: Rng, xs: readonly T[]): T => xs[Math.floor(rng.random() * xs.length)]!;
const int = (rng: Rng, lo: number, hi: number) => lo + Math.floor(rng.random() * (hi - lo + 1));

function objectSchema(rng: Rng, depth: number): Record<string, unknown> {
  const n = int(rng, 1, 4);
  const names = new Set<string>();
  while (names.size < n) names.add(pick(rng, WORDS));
  const properties: Record<string, unknown> = {};
  const required: string[] = [];
  for (const name of names) {
    properties[name] = anySchema(rng, depth + 1);
    if (rng.random() < 0.75) required.push(name);
  }
  return { type: 'object', properties, required, additionalProperties: false };
}

function anySchema(rng: Rng, depth: number): Record<string, unknown> {
  const kinds = depth >= 3 ? ['string', 'number', 'integer', 'boolean', 'enum', 'nullable'] : ['string', 'number', 'integer', 'boolean', 'enum', 'nullable', 'object', 'array', 'array'];
  switch (pick(rng, kinds)) {
    case 'string':
      return rng.random() < 0.5 ? { type: 'string' } : { type: 'string', minLength: int(rng, 0, 3), maxLength: int(rng, 4, 24) };
    case 'number':
      return { type: 'number' };
    case 'integer':
      return { type: 'integer' };
    case 'boolean':
      return { type: 'boolean' };
    case 'enum': {
      const k = int(rng, 1, 4);
      const values = new Set<unknown>();
      while (values.size < k) values.add(rng.random() < 0.7 ? pick(rng, ENUM_WORDS) : int(rng, -5, 120));
      return { enum: [...values] };
    }
    case 'nullable':
      return { anyOf: [{ type: pick(rng, ['string', 'integer', 'boolean']) }, { type: 'null' }] };
    case 'object':
      return objectSchema(rng, depth);
    default: {
      const minItems = int(rng, 0, 2);
      return { type: 'array', items: anySchema(rng, depth + 1), minItems, maxItems: minItems + int(rng, 0, 4) };
    }
  }
}
