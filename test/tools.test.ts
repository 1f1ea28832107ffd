import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { setBackend } from '../src/backend/index.js';
import { ChatTemplate } from '../src/chat/template.js';
import { JsonConstraint } from '../src/generate/constrained/json_constraint.js';
import { tokenTrieFor } from '../src/generate/constrained/token_trie.js';
import { renderChat } from '../src/serve/chat_template.js';
import type { AttnServer } from '../src/serve/server.js';
import { parseTools, toolCallGrammar, TOOL_CALL_OPEN } from '../src/serve/tools.js';
import { forTemplate, messagesAsText } from '../src/serve/tools_prompt.js';
import { ToolCallStream } from '../src/serve/tools_stream.js';
import { postJson, startTiny, tinyTokenizer } from './serve_fixture.js';

const ajv = new Ajv({ strict: false });

const WEATHER = {
  type: 'function' as const,
  function: {
    name: 'get_weather',
    description: 'Weather now in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 16 }, unit: { enum: ['C', 'F'] } }, required: ['city', 'unit'], additionalProperties: false },
    strict: true,
  },
};
const ADD = { type: 'function' as const, function: { name: 'add', parameters: { type: 'object', properties: { a: { type: 'integer' }, b: { type: 'integer' } }, required: ['a', 'b'] } } };
const TOOLS = [WEATHER, ADD];
const schemaOf = (name: string) => TOOLS.find((t) => t.function.name === name)!.function.parameters;

function assertCall(call: { id: string; type: string; function: { name: string; arguments: string } }, name?: string): void {
  assert.match(call.id, /^call_/);
  assert.equal(call.type, 'function');
  if (name) assert.equal(call.function.name, name);
  const validate = ajv.compile(schemaOf(call.function.name));
  assert.ok(validate(JSON.parse(call.function.arguments)), `${call.function.arguments}: ${ajv.errorsText(validate.errors)}`);
}

describe('tool calls with the openai client', () => {
  let s: AttnServer;
  let client: OpenAI;
  before(async () => {
    setBackend('js');
    s = await startTiny({ blockSize: 1024, cache: null });
    client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(() => s.close());

  const user = [{ role: 'user' as const, content: 'Weather in Paris?' }];

  it('tool_choice "required": a call whose arguments validate, finish_reason "tool_calls"', async () => {
    for (let seed = 0; seed < 3; seed++) {
      const r = await client.chat.completions.create({ model: 'tiny', messages: user, tools: TOOLS, tool_choice: 'required', max_tokens: 80, temperature: 1, seed });
      const c = r.choices[0]!;
      assert.equal(c.finish_reason, 'tool_calls');
      assert.equal(c.message.content, null);
      assert.equal(c.message.tool_calls!.length, 1);
      assertCall(c.message.tool_calls![0]! as any);
    }
  });

  it('a named function is the one called', async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages: user, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'add' } }, max_tokens: 90, temperature: 1, seed: 4 });
    assertCall(r.choices[0]!.message.tool_calls![0]! as any, 'add');
  });

  it('streams a call as OpenAI does: id, type and name first, then argument fragments', async () => {
    const body = { model: 'tiny', messages: user, tools: TOOLS, tool_choice: 'required' as const, max_tokens: 80, temperature: 1, seed: 7 };
    const whole = await client.chat.completions.create(body);
    const stream = await client.chat.completions.create({ ...body, stream: true });
    const deltas: any[] = [];
    let finish = null;
    for await (const c of stream) {
      const ch = c.choices[0];
      if (!ch) continue;
      if (ch.delta.tool_calls) deltas.push(...ch.delta.tool_calls);
      assert.ok(!ch.delta.content, 'no text content in a call');
      finish = ch.finish_reason ?? finish;
    }
    assert.equal(finish, 'tool_calls');
    const first = deltas[0];
    assert.deepEqual([first.index, first.type, first.function.arguments], [0, 'function', '']);
    assert.match(first.id, /^call_/);
    assert.ok(deltas.length > 2, 'arguments arrive in fragments');
    assert.ok(deltas.slice(1).every((d) => d.index === 0 && d.id === undefined && d.function.name === undefined));
    const args = deltas.map((d) => d.function.arguments).join('');
    assert.deepEqual({ name: first.function.name, args }, { name: (whole.choices[0]!.message.tool_calls![0]! as any).function.name, args: (whole.choices[0]!.message.tool_calls![0]! as any).function.arguments });
  });

  it('a two-turn loop: call, tool result, answer — rendered through the transcript', async () => {
    const first = await client.chat.completions.create({ model: 'tiny', messages: user, tools: TOOLS, tool_choice: 'required', max_tokens: 80, temperature: 1, seed: 2 });
    const call = first.choices[0]!.message.tool_calls![0]! as any;
    const messages: any[] = [...user, first.choices[0]!.message, { role: 'tool', tool_call_id: call.id, content: '22 C, sunny' }];
    const second = await client.chat.completions.create({ model: 'tiny', messages, tools: TOOLS, tool_choice: 'none', max_tokens: 10, temperature: 0 });
    assert.equal(second.choices[0]!.message.tool_calls, undefined);
    assert.equal(typeof second.choices[0]!.message.content, 'string');
    const transcript = renderChat(messagesAsText(messages, TOOLS));
    assert.equal(second.usage!.prompt_tokens, transcript.length, 'the char tokenizer: one token per character');
    assert.ok(transcript.includes(`assistant: ${TOOL_CALL_OPEN}{"name":"${call.function.name}","arguments":${call.function.arguments}}</tool_call>`));
    assert.ok(transcript.includes(`tool: {"tool_call_id":"${call.id}","name":"${call.function.name}","content":"22 C, sunny"}`));
  });

  it('"auto": each answer is a valid call or text, never a broken call', async () => {
    const kinds = new Set<string>();
    for (let seed = 0; seed < 8; seed++) {
      const r = await client.chat.completions.create({ model: 'tiny', messages: user, tools: TOOLS, max_tokens: 80, temperature: 1.5, seed });
      const c = r.choices[0]!;
      if (c.message.tool_calls) {
        assertCall(c.message.tool_calls[0]! as any);
        kinds.add('call');
      } else {
        assert.ok(!c.message.content!.startsWith('<tool_call>'), c.message.content!);
        kinds.add('text');
      }
    }
    assert.ok(kinds.has('text'));
  });

  it('bad tools and tool messages: 400s in OpenAI\'s format', async () => {
    const ask = (extra: object) => postJson(`${s.url}/v1/chat/completions`, { model: 'tiny', messages: user, max_tokens: 20, ...extra });
    const bad = await ask({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'object', properties: { x: { type: 'string', format: 'email' } } } } }] });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.error.param, 'tools[0].function.parameters');
    assert.match(bad.json.error.message, /keyword "format" is not supported/);
    const notObject = await ask({ tools: [{ type: 'function', function: { name: 'f', parameters: { type: 'string' } } }] });
    assert.match(notObject.json.error.message, /must be a schema of "type": "object"/);
    const twice = await ask({ tools: [ADD, ADD] });
    assert.match(twice.json.error.message, /"add" is defined twice/);
    const unknown = await ask({ tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } });
    assert.equal(unknown.json.error.param, 'tool_choice');
    const noTools = await ask({ tool_choice: 'required' });
    assert.match(noTools.json.error.message, /needs 'tools'/);
    const orphan = await postJson(`${s.url}/v1/chat/completions`, { model: 'tiny', messages: [...user, { role: 'tool', tool_call_id: 'call_x', content: '1' }], max_tokens: 5 });
    assert.equal(orphan.status, 400);
    assert.equal(orphan.json.error.param, 'messages[1].tool_call_id');
    assert.match(orphan.json.error.message, /no earlier assistant message made a tool call with id "call_x"/);
    const badName = await ask({ tools: [{ type: 'function', function: { name: 'has space' } }] });
    assert.equal(badName.json.error.param, 'tools[0].function.name');
  });
});

describe('tool-call pieces', () => {
  it('under "auto" the first token chooses: the marker commits to a call, anything else is free text', () => {
    const tok = tinyTokenizer();
    const setup = parseTools(TOOLS, 'auto')!;
    const out = toolCallGrammar(setup)!;
    assert.equal(out.optional, true);
    const c = new JsonConstraint(out.grammar, tokenTrieFor(tok, 96));
    const call = c.startOptional();
    call.accept(tok.encode('<')[0]!);
    assert.equal(call.free, false);
    assert.deepEqual(call.allowed().map((id) => tok.decode([id])), ['t'], 'committed: only the marker can follow');
    const text = c.startOptional();
    text.accept(tok.encode('H')[0]!);
    assert.equal(text.free, true);
  });

  it('ToolCallStream: the same deltas however the text is split', () => {
    const text = '<tool_call>{"name":"add","arguments":{"a":1,"b":{"c":"}"}}}</tool_call>';
    for (const size of [1, 2, 5, 100]) {
      const deltas: any[] = [];
      let content = '';
      const s = new ToolCallStream('call_1', { content: (t) => (content += t), toolCall: (d) => deltas.push(d) });
      for (let i = 0; i < text.length; i += size) s.push(text.slice(i, i + size));
      s.end();
      assert.equal(content, '');
      assert.deepEqual(deltas[0], { index: 0, id: 'call_1', type: 'function', function: { name: 'add', arguments: '' } });
      assert.equal(deltas.slice(1).map((d) => d.function.arguments).join(''), '{"a":1,"b":{"c":"}"}}');
    }
    let content = '';
    const plain = new ToolCallStream('call_2', { content: (t) => (content += t), toolCall: () => assert.fail('not a call') });
    for (const p of ['<to', 'ol', ' box']) plain.push(p);
    plain.end();
    assert.equal(content, '<tool box');
  });

  it('a template that knows tools gets tools= and calls with object arguments; one that does not gets the text format', () => {
    const knows = new ChatTemplate(
      "{%- if tools %}TOOLS:{{ tools | length }}\n{%- endif %}{%- for m in messages %}{{ m.role }}:{%- if m.tool_calls %}{%- for c in m.tool_calls %}CALL {{ c.function.name }} {{ c.function.arguments.a }}{%- endfor %}{%- else %}{{ m.content }}{%- endif %}\n{%- endfor %}",
      {},
    );
    const messages = [
      { role: 'user', content: 'add' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function' as const, function: { name: 'add', arguments: '{"a":2,"b":3}' } }] },
      { role: 'tool', content: '5', tool_call_id: 'call_1' },
    ];
    const shaped = forTemplate(knows, messages, TOOLS);
    assert.equal(knows.render(shaped.messages, { tools: shaped.tools! }), 'TOOLS:2user:addassistant:CALL add 2tool:5');
    const plain = new ChatTemplate(undefined, {});
    const text = plain.render(forTemplate(plain, messages, TOOLS).messages);
    assert.ok(text.includes('<|im_start|>system\nTools you can call'));
    assert.ok(text.includes('<|im_start|>user\n{"tool_call_id":"call_1","name":"add","content":"5"}'));
  });
});
