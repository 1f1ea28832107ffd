import { z } from 'zod';
import { JsonConstraint } from '../generate/constrained/json_constraint.js';
import { anyObject, type GrammarNode } from '../generate/constrained/json_grammar.js';
import { compileJsonSchema } from '../generate/constrained/json_schema.js';
import { tokenTrieFor } from '../generate/constrained/token_trie.js';
import { UserError } from '../util/errors.js';
import { invalidParam } from './errors.js';
import type { ServedModel } from './served_model.js';

/**
 * `response_format` by constrained decoding: `{"type": "json_object"}` and
 * `{"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`
 * become a grammar the sampler follows token by token
 * (src/generate/constrained/), so the answer always parses — and, for a
 * schema, validates. A model left out of `structured_outputs.constrained_decoding`
 * samples freely; the router's check (router.ts) then catches a bad answer
 * and escalates to the next tier, as before.
 */

export const StructuredOutputsSchema = z
  .object({
    /** Models whose sampler follows response_format and tool-call grammars: true = all, false = none, or their names. */
    constrained_decoding: z.union([z.boolean(), z.array(z.string().min(1))]).default(true),
  })
  .strict();

export type StructuredOutputsConfig = z.infer<typeof StructuredOutputsSchema>;

export function constrains(config: StructuredOutputsConfig | undefined, model: string): boolean {
  const c = config?.constrained_decoding ?? true;
  return typeof c === 'boolean' ? c : c.includes(model);
}

/** What a request's output must be: a grammar, and whether writing it is optional (tool_choice "auto"). */
export interface OutputGrammar {
  grammar: GrammarNode;
  optional: boolean;
}

type Json = Record<string, unknown>;

/** The grammar of a request's response_format; null for text. 400 naming the field for a format attn cannot follow. */
export function responseFormatGrammar(format: { type: string } | null): GrammarNode | null {
  if (!format || format.type === 'text') return null;
  if (format.type === 'json_object') return anyObject();
  const spec = (format as Json).json_schema;
  const param = 'response_format.json_schema';
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) throw invalidParam(param, `Invalid '${param}': must be an object {"name", "schema", "strict"}`);
  const { schema, strict, name } = spec as Json;
  if (name !== undefined && (typeof name !== 'string' || !/^[\w-]{1,64}$/.test(name))) throw invalidParam(`${param}.name`, `Invalid '${param}.name': 1–64 letters, digits, _ or -`);
  if (strict !== undefined && strict !== null && typeof strict !== 'boolean') throw invalidParam(`${param}.strict`, `Invalid '${param}.strict': must be true or false`);
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema)) throw invalidParam(`${param}.schema`, `Invalid '${param}.schema': must be a JSON Schema object`);
  return compileSchema(schema, `${param}.schema`, strict === true);
}

/** A JSON Schema from a request: its compile errors are 400s on `param`, with the keyword named. */
export function compileSchema(schema: unknown, param: string, strict: boolean): GrammarNode {
  try {
    return compileJsonSchema(schema, { strict });
  } catch (e) {
    if (e instanceof UserError) throw invalidParam(param, `Invalid '${param}': ${e.message}`, 'invalid_schema');
    throw e;
  }
}

/** The grammar bound to one served model's vocabulary, ending at its stop tokens; null when the model is not constrained. */
export function constraintFor(output: OutputGrammar | null, served: ServedModel, stopTokens: readonly number[], config: StructuredOutputsConfig | undefined): JsonConstraint | null {
  if (!output || !constrains(config, served.name)) return null;
  return new JsonConstraint(output.grammar, tokenTrieFor(served.tokenizer, served.model.config.vocab_size), stopTokens);
}

/** 400 when the tokens the answer may use (max_tokens, or what the context leaves) cannot hold the shortest document (one token per byte at worst). */
export function checkRoom(constraint: JsonConstraint | null, optional: boolean, tokens: number): void {
  if (!constraint || optional || constraint.minBytes <= tokens) return;
  throw invalidParam('max_tokens', `Invalid 'max_tokens': ${tokens} tokens (max_tokens, or what the context leaves after the prompt) are too few for the shortest valid answer (${constraint.minBytes} tokens at worst)`);
}
