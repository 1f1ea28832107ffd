import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { bytesOf, fixedText, type GrammarNode } from '../generate/constrained/json_grammar.js';
import { invalidParam } from './errors.js';
import { compileSchema, type OutputGrammar } from './response_format.js';

/**
 * OpenAI tool calls. The model answers a call as
 *
 *     <tool_call>{"name":"get_weather","arguments":{"city":"Paris"}}</tool_call>
 *
 * (Qwen's and Hermes' format, without their newlines) and the server turns
 * that into `tool_calls` with the arguments as a JSON string. The call is
 * written under a grammar (constrained decoding): the name is one of the
 * tools' and the arguments are valid under that tool's `parameters` schema.
 *
 * How the model chooses (tool_choice):
 * - "none": no grammar; the tools are still shown to the model.
 * - "required" / a named function: the whole answer is a call (of that function).
 * - "auto": the first token decides. A token that can begin `<tool_call>`
 *   commits the answer to a call (the rest is constrained); any other token
 *   begins a text answer, which is then free. So an untrained model still
 *   answers either a valid call or text, never a broken call.
 * One call per answer (parallel_tool_calls is accepted; at most one call is made).
 */

export const TOOL_CALL_OPEN = '<tool_call>';
export const TOOL_CALL_CLOSE = '</tool_call>';

export const ToolSchema = z.object({
  type: z.literal('function', { errorMap: () => ({ message: 'must be "function"' }) }),
  function: z.object({
    name: z.string({ required_error: 'is required' }),
    description: z.string().nullish(),
    parameters: z.record(z.string(), z.unknown()).nullish(),
    strict: z.boolean().nullish(),
  }),
});

export const ToolChoiceSchema = z.union([z.enum(['none', 'auto', 'required']), z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) })], {
  errorMap: () => ({ message: 'must be "none", "auto", "required" or {"type": "function", "function": {"name": …}}' }),
});

export const ToolCallSchema = z.object({
  id: z.string().min(1),
  type: z.literal('function'),
  function: z.object({ name: z.string(), arguments: z.string() }),
});

export type ToolDefinition = z.infer<typeof ToolSchema>;
export type ToolCall = z.infer<typeof ToolCallSchema>;
export type ToolChoice = 'none' | 'auto' | 'required' | { name: string };

export interface ToolSetup {
  /** The request's tools, as OpenAI sent them (chat templates read this shape). */
  definitions: ToolDefinition[];
  choice: ToolChoice;
  /** Each tool's parameters as a grammar, by name. */
  grammars: Map<string, GrammarNode>;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** The parameters of a tool that gives none: an object with any properties. */
const NO_PARAMETERS = { type: 'object', properties: {} };

/** Check `tools` and `tool_choice` (400s naming the field); null when the request has no tools. */
export function parseTools(tools: ToolDefinition[] | null | undefined, choice: z.infer<typeof ToolChoiceSchema> | null | undefined): ToolSetup | null {
  if (!tools || tools.length === 0) {
    if (choice !== undefined && choice !== null && choice !== 'none') throw invalidParam('tool_choice', "Invalid 'tool_choice': it needs 'tools'");
    return null;
  }
  const grammars = new Map<string, GrammarNode>();
  tools.forEach((t, i) => {
    const name = t.function.name;
    if (!NAME.test(name)) throw invalidParam(`tools[${i}].function.name`, `Invalid 'tools[${i}].function.name': 1–64 letters, digits, _ or - (got ${JSON.stringify(name)})`);
    if (grammars.has(name)) throw invalidParam(`tools[${i}].function.name`, `Invalid 'tools[${i}].function.name': "${name}" is defined twice`);
    const params = t.function.parameters ?? NO_PARAMETERS;
    const grammar = compileSchema(params, `tools[${i}].function.parameters`, t.function.strict === true);
    if (grammar.kind !== 'object') throw invalidParam(`tools[${i}].function.parameters`, `Invalid 'tools[${i}].function.parameters': must be a schema of "type": "object"`);
    grammars.set(name, grammar);
  });
  const c: ToolChoice = choice == null ? 'auto' : typeof choice === 'string' ? choice : { name: choice.function.name };
  if (typeof c === 'object' && !grammars.has(c.name)) throw invalidParam('tool_choice', `Invalid 'tool_choice': no tool is named "${c.name}" (tools: ${[...grammars.keys()].join(', ')})`);
  return { definitions: tools, choice: c, grammars };
}

/** The grammar of the answer under tool_choice; null for "none". */
export function toolCallGrammar(setup: ToolSetup): OutputGrammar | null {
  if (setup.choice === 'none') return null;
  const names = typeof setup.choice === 'object' ? [setup.choice.name] : [...setup.grammars.keys()];
  const call: GrammarNode = {
    kind: 'switch',
    cases: names.map((name) => ({
      prefix: bytesOf(`{"name":${JSON.stringify(name)},"arguments":`),
      then: { kind: 'sequence', parts: [setup.grammars.get(name)!, fixedText('}')] },
    })),
  };
  return { grammar: { kind: 'sequence', parts: [fixedText(TOOL_CALL_OPEN), call, fixedText(TOOL_CALL_CLOSE)] }, optional: setup.choice === 'auto' };
}

/** One message as the server keeps it: OpenAI's fields that templates read. */
export interface ToolMessageFields {
  role: string;
  content: string | null;
  tool_calls?: ToolCall[] | null;
  tool_call_id?: string | null;
  name?: string | null;
}

/**
 * Every tool message answers a call an earlier assistant message made
 * (400 naming the message otherwise), and no call id is used twice.
 */
export function checkToolMessages(messages: readonly ToolMessageFields[]): void {
  const calls = new Map<string, string>();
  messages.forEach((m, i) => {
    for (const c of m.tool_calls ?? []) {
      if (m.role !== 'assistant') throw invalidParam(`messages[${i}].tool_calls`, `Invalid 'messages[${i}].tool_calls': only assistant messages make tool calls`);
      if (calls.has(c.id)) throw invalidParam(`messages[${i}].tool_calls`, `Invalid 'messages[${i}].tool_calls': the call id "${c.id}" is used twice`);
      calls.set(c.id, c.function.name);
    }
    if (m.role !== 'tool') return;
    const id = m.tool_call_id;
    if (typeof id !== 'string' || id === '') throw invalidParam(`messages[${i}].tool_call_id`, `Invalid 'messages[${i}]': a tool message needs 'tool_call_id'`);
    if (!calls.has(id)) throw invalidParam(`messages[${i}].tool_call_id`, `Invalid 'messages[${i}].tool_call_id': no earlier assistant message made a tool call with id "${id}"`);
  });
}

/** The name of the function a call id called, from the assistant messages before. */
export function calledName(messages: readonly ToolMessageFields[], id: string): string | undefined {
  for (const m of messages) for (const c of m.tool_calls ?? []) if (c.id === id) return c.function.name;
  return undefined;
}

const CALL = /^<tool_call>\{"name":("(?:[A-Za-z0-9_-]+)"),"arguments":([\s\S]*)\}<\/tool_call>$/;

/** The call in a generated answer, or null when the answer is text (or a call cut short). */
export function parseToolCall(text: string): { name: string; arguments: string } | null {
  const m = CALL.exec(text);
  if (!m) return null;
  try {
    JSON.parse(m[2]!);
  } catch {
    return null; // an unconstrained model's broken call stays text
  }
  return { name: JSON.parse(m[1]!) as string, arguments: m[2]! };
}

export const newCallId = (): string => `call_${randomBytes(18).toString('base64url')}`;

/** A call as the model writes it (for the transcript of an earlier turn). */
export function writtenCall(c: ToolCall): string {
  let args: unknown;
  try {
    args = JSON.parse(c.function.arguments);
  } catch {
    args = c.function.arguments; // as the client sent it
  }
  return `${TOOL_CALL_OPEN}${JSON.stringify({ name: c.function.name, arguments: args })}${TOOL_CALL_CLOSE}`;
}
