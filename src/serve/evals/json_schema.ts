/**
 * A small JSON Schema validator for evaluation cases: the keywords answers
 * are usually checked with (type, properties, required,
 * additionalProperties, items, enum, const, numeric and length bounds,
 * pattern, anyOf/oneOf/allOf). A schema with any other keyword is refused
 * when the suite is read, naming the keyword, rather than half-checked.
 * (ajv is a dev dependency only; the constrained-decoding work has its own
 * schema compiler, which could replace this once merged.)
 */

export type Schema = boolean | { [k: string]: unknown };

const KNOWN = new Set(['type', 'properties', 'required', 'additionalProperties', 'items', 'enum', 'const', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'minLength', 'maxLength', 'pattern', 'minItems', 'maxItems', 'anyOf', 'oneOf', 'allOf', 'title', 'description', '$schema', 'default', 'examples']);
const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'object', 'array', 'null']);

/** Throws with the path and keyword of the first thing this validator cannot check. */
export function checkSchema(schema: unknown, path = '#'): void {
  if (typeof schema === 'boolean') return;
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw new Error(`${path}: a schema must be an object or a boolean`);
  const s = schema as Record<string, unknown>;
  for (const k of Object.keys(s)) if (!KNOWN.has(k)) throw new Error(`${path}: the keyword "${k}" is not supported (supported: ${[...KNOWN].filter((x) => !['title', 'description', '$schema', 'default', 'examples'].includes(x)).join(', ')})`);
  const types = s.type === undefined ? [] : Array.isArray(s.type) ? s.type : [s.type];
  for (const t of types) if (typeof t !== 'string' || !TYPES.has(t)) throw new Error(`${path}/type: "${String(t)}" is not a JSON type`);
  if (s.pattern !== undefined) {
    try {
      new RegExp(s.pattern as string, 'u');
    } catch (e) {
      throw new Error(`${path}/pattern: ${(e as Error).message}`);
    }
  }
  if (s.properties !== undefined) for (const [k, v] of Object.entries(s.properties as object)) checkSchema(v, `${path}/properties/${k}`);
  if (s.items !== undefined) checkSchema(s.items, `${path}/items`);
  if (typeof s.additionalProperties === 'object') checkSchema(s.additionalProperties, `${path}/additionalProperties`);
  for (const k of ['anyOf', 'oneOf', 'allOf']) if (s[k] !== undefined) (s[k] as unknown[]).forEach((x, i) => checkSchema(x, `${path}/${k}/${i}`));
}

const typeOf = (v: unknown): string => (v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v);

function hasType(v: unknown, t: string): boolean {
  if (t === 'integer') return typeof v === 'number' && Number.isInteger(v);
  return typeOf(v) === t;
}

/** Every way `value` breaks `schema`, as "path: problem" lines; empty when it validates. */
export function validateJson(value: unknown, schema: Schema, path = '$'): string[] {
  if (schema === true) return [];
  if (schema === false) return [`${path}: no value is allowed here`];
  const s = schema;
  const errors: string[] = [];
  if (s.type !== undefined) {
    const types = (Array.isArray(s.type) ? s.type : [s.type]) as string[];
    if (!types.some((t) => hasType(value, t))) return [`${path}: expected ${types.join(' or ')}, got ${typeOf(value)}`];
  }
  if (s.enum !== undefined && !(s.enum as unknown[]).some((e) => JSON.stringify(e) === JSON.stringify(value))) errors.push(`${path}: not one of ${JSON.stringify(s.enum)}`);
  if (s.const !== undefined && JSON.stringify(s.const) !== JSON.stringify(value)) errors.push(`${path}: must be ${JSON.stringify(s.const)}`);
  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) errors.push(`${path}: below the minimum ${s.minimum}`);
    if (typeof s.maximum === 'number' && value > s.maximum) errors.push(`${path}: above the maximum ${s.maximum}`);
    if (typeof s.exclusiveMinimum === 'number' && value <= s.exclusiveMinimum) errors.push(`${path}: must be > ${s.exclusiveMinimum}`);
    if (typeof s.exclusiveMaximum === 'number' && value >= s.exclusiveMaximum) errors.push(`${path}: must be < ${s.exclusiveMaximum}`);
  }
  if (typeof value === 'string') {
    const n = [...value].length;
    if (typeof s.minLength === 'number' && n < s.minLength) errors.push(`${path}: shorter than ${s.minLength}`);
    if (typeof s.maxLength === 'number' && n > s.maxLength) errors.push(`${path}: longer than ${s.maxLength}`);
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value)) errors.push(`${path}: does not match ${s.pattern}`);
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) errors.push(`${path}: fewer than ${s.minItems} items`);
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) errors.push(`${path}: more than ${s.maxItems} items`);
    if (s.items !== undefined) value.forEach((v, i) => errors.push(...validateJson(v, s.items as Schema, `${path}[${i}]`)));
  }
  if (typeOf(value) === 'object') {
    const obj = value as Record<string, unknown>;
    const props = (s.properties ?? {}) as Record<string, Schema>;
    for (const k of (s.required ?? []) as string[]) if (!Object.hasOwn(obj, k)) errors.push(`${path}: missing required key "${k}"`);
    for (const [k, v] of Object.entries(obj)) {
      if (Object.hasOwn(props, k)) errors.push(...validateJson(v, props[k]!, `${path}.${k}`));
      else if (s.additionalProperties === false) errors.push(`${path}: unexpected key "${k}"`);
      else if (typeof s.additionalProperties === 'object') errors.push(...validateJson(v, s.additionalProperties as Schema, `${path}.${k}`));
    }
  }
  if (s.allOf !== undefined) for (const sub of s.allOf as Schema[]) errors.push(...validateJson(value, sub, path));
  if (s.anyOf !== undefined && !(s.anyOf as Schema[]).some((sub) => validateJson(value, sub, path).length === 0)) errors.push(`${path}: matches none of anyOf`);
  if (s.oneOf !== undefined) {
    const n = (s.oneOf as Schema[]).filter((sub) => validateJson(value, sub, path).length === 0).length;
    if (n !== 1) errors.push(`${path}: matches ${n} of oneOf, not exactly one`);
  }
  return errors;
}
