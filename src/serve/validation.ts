import type { z } from 'zod';
import { invalidParam } from './errors.js';

/** `messages[0].content` from a zod path. */
export function paramName(path: ReadonlyArray<string | number>): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? p : `.${p}`)).join('');
}

function valueAt(body: unknown, path: ReadonlyArray<string | number>): unknown {
  let v = body;
  for (const p of path) v = typeof v === 'object' && v !== null ? (v as Record<string | number, unknown>)[p] : undefined;
  return v;
}

/** A short rendering of the offending value for the error message. */
function shown(v: unknown): string {
  const s = v === undefined ? 'nothing' : JSON.stringify(v) ?? String(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/**
 * Parse a request body with its schema; the first problem becomes a 400 in
 * OpenAI's format whose `param` names the field, e.g.
 * `Invalid 'temperature': Number must be less than or equal to 2 (got 5)`.
 */
export function validate<S extends z.ZodTypeAny>(schema: S, body: unknown): z.infer<S> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalidParam(null, 'The request body must be a JSON object');
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  const param = paramName(issue.path);
  const value = valueAt(body, issue.path);
  if (value === undefined && issue.code === 'invalid_type') throw invalidParam(param, `Missing required parameter: '${param}'`);
  throw invalidParam(param || null, `Invalid '${param || 'body'}': ${issue.message} (got ${shown(value)})`);
}

