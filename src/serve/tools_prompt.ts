import type { ChatTemplate } from '../chat/template.js';
import type { ChatMessage } from './chat_template.js';
import { calledName, TOOL_CALL_CLOSE, TOOL_CALL_OPEN, writtenCall, type ToolDefinition, type ToolMessageFields } from './tools.js';

/**
 * How tools, calls and their results reach the model's prompt.
 *
 * A model whose chat template knows tools (it reads `tools`, as Qwen's,
 * Llama 3.1's and Mistral's do) gets them as transformers passes them: the
 * OpenAI tool definitions as `tools=`, assistant messages with `tool_calls`
 * (arguments as objects), `tool` messages with `tool_call_id`.
 *
 * attn's plain transcript (chat_template.ts), and templates that know no
 * tools, get them as text, in this documented format:
 *
 *     system: Tools you can call - answer <tool_call>{"name": ..., "arguments": {...}}</tool_call> to call one: [{"name":"get_weather",…}]
 *     user: Weather in Paris?
 *     assistant: <tool_call>{"name":"get_weather","arguments":{"city":"Paris"}}</tool_call>
 *     tool: {"tool_call_id":"call_1","name":"get_weather","content":"22 C"}
 *     assistant:
 *
 * (a template that knows no tools sees the tool result as a user message,
 * since many of them refuse other roles).
 */

/** The system line that lists the tools. */
export function toolsInstruction(tools: readonly ToolDefinition[]): string {
  const list = tools.map((t) => ({ name: t.function.name, ...(t.function.description ? { description: t.function.description } : {}), parameters: t.function.parameters ?? { type: 'object', properties: {} } }));
  return `Tools you can call - answer ${TOOL_CALL_OPEN}{"name": ..., "arguments": {...}}${TOOL_CALL_CLOSE} to call one: ${JSON.stringify(list)}`;
}

/** The messages as plain text turns: calls written out, results as JSON, the tool list as a system message after the leading ones. */
export function messagesAsText(messages: readonly ToolMessageFields[], tools: readonly ToolDefinition[] | null, toolRole: 'tool' | 'user' = 'tool'): ChatMessage[] {
  const out: ChatMessage[] = messages.map((m) => {
    if (m.role === 'tool') {
      const name = calledName(messages, m.tool_call_id ?? '');
      return { role: toolRole, content: JSON.stringify({ tool_call_id: m.tool_call_id, ...(name ? { name } : {}), content: m.content ?? '' }) };
    }
    const calls = (m.tool_calls ?? []).map(writtenCall).join('');
    return { role: m.role as ChatMessage['role'], content: `${m.content ?? ''}${calls}` };
  });
  if (tools && tools.length > 0) {
    let at = 0;
    while (at < out.length && (out[at]!.role === 'system' || out[at]!.role === 'developer')) at++;
    out.splice(at, 0, { role: 'system', content: toolsInstruction(tools) });
  }
  return out;
}

/** Whether a chat template reads tools or tool calls itself. */
export const templateKnowsTools = (t: ChatTemplate): boolean => /\btools\b|tool_calls/.test(t.source);

/** Messages and options for a model's own chat template (see the file comment). */
export function forTemplate(template: ChatTemplate, messages: readonly ToolMessageFields[], tools: readonly ToolDefinition[] | null): { messages: ChatMessage[]; tools?: unknown[] } {
  const hasTools = (tools && tools.length > 0) || messages.some((m) => m.role === 'tool' || (m.tool_calls?.length ?? 0) > 0);
  if (!hasTools) return { messages: messages.map((m) => ({ role: m.role as ChatMessage['role'], content: m.content ?? '' })) };
  if (!templateKnowsTools(template)) return { messages: messagesAsText(messages, tools, 'user') };
  const shaped = messages.map((m) => {
    const base: Record<string, unknown> = { role: m.role, content: m.content ?? '' };
    if (m.tool_calls?.length) {
      base.tool_calls = m.tool_calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.function.name, arguments: parseOr(c.function.arguments) } }));
    }
    if (m.role === 'tool') {
      base.tool_call_id = m.tool_call_id;
      const name = calledName(messages, m.tool_call_id ?? '');
      if (name) base.name = name;
    }
    return base as unknown as ChatMessage;
  });
  return { messages: shaped, ...(tools && tools.length > 0 ? { tools: [...tools] } : {}) };
}

function parseOr(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
