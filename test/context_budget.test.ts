import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { setBackend } from '../src/backend/index.js';
import { renderChat } from '../src/serve/chat_template.js';
import { parseServeConfig } from '../src/serve/config.js';
import type { AttnServer } from '../src/serve/server.js';
import { postJson, startTiny } from './serve_fixture.js';

const metricsText = async (s: AttnServer) => (await fetch(`${s.url}/metrics`)).text();
const ledger = async (s: AttnServer) => (await (await fetch(`${s.url}/v1/ledger`)).json()) as any;

/** A chat of `turns` user/assistant exchanges, each line about 40 characters (one token each with the char tokenizer). */
function longChat(turns: number, system = 'Be brief.'): Array<{ role: 'system' | 'user' | 'assistant'; content: string }> {
  const out: Array<{ role: 'system' | 'user' | 'assistant'; content: string }> = [{ role: 'system', content: system }];
  for (let i = 0; i < turns; i++) {
    out.push({ role: 'user', content: `Question number ${i} about the weather?` });
    out.push({ role: 'assistant', content: `Answer number ${i}: it is sunny today.` });
  }
  out.push({ role: 'user', content: 'And tomorrow?' });
  return out;
}

describe('context budgets', () => {
  let s: AttnServer;
  let client: OpenAI;
  before(async () => {
    setBackend('js');
    s = await startTiny({
      names: ['tiny', 'other', 'sum'],
      blockSize: 256,
      cache: null,
      configInput: {
        routing: { tiers: ['tiny'] },
        context_budget: {
          default: { max_tool_tokens: 20 },
          models: { other: { strategy: 'summarize', summarizer: 'sum', summary_max_tokens: 12, reserve_tokens: 16 }, sum: { enabled: false } },
        },
      },
    });
    client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(() => s.close());

  it('a chat longer than the context drops its oldest turns instead of failing, and says so', async () => {
    const messages = longChat(12);
    const full = renderChat(messages).length;
    assert.ok(full > 256, 'the chat is longer than the context');
    const r = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 8, temperature: 0 });
    const cut = (r as any).attn.context;
    // Budget: the context minus max_tokens (8, under a quarter of 256).
    assert.equal(cut.budget_tokens, 256 - 8);
    assert.equal(cut.original_prompt_tokens, full);
    assert.ok(cut.prompt_tokens <= cut.budget_tokens);
    assert.equal(r.usage!.prompt_tokens, cut.prompt_tokens);
    assert.equal(cut.tokens_saved, full - cut.prompt_tokens);
    assert.equal(cut.dropped_messages % 2, 0, 'whole turns');
    // What is kept: the system prompt, then the newest turns, exactly.
    const kept = [messages[0]!, ...messages.slice(1 + cut.dropped_messages)];
    assert.equal(renderChat(kept).length, cut.prompt_tokens);
    assert.ok(renderChat([messages[0]!, ...messages.slice(cut.dropped_messages - 1)]).length > cut.budget_tokens, 'no more was dropped than needed');
    const l = await ledger(s);
    assert.equal(l.context_tokens_saved, cut.tokens_saved);
    assert.match(await metricsText(s), new RegExp(`attn_context_tokens_saved_total\\{model="tiny",action="dropped"\\} ${cut.tokens_saved}`));
  });

  it('streams the same report on the usage chunk', async () => {
    const messages = longChat(12);
    const res = await fetch(`${s.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'tiny', messages, max_tokens: 8, temperature: 0, stream: true, stream_options: { include_usage: true } }) });
    const events = (await res.text()).split('\n\n').filter((e) => e.startsWith('data: {')).map((e) => JSON.parse(e.slice(6)));
    const last = events[events.length - 1];
    assert.deepEqual(last.choices, []);
    assert.equal(last.attn.context.prompt_tokens, last.usage.prompt_tokens);
  });

  it('caps long tool results to max_tool_tokens', async () => {
    const call = { id: 'call_1', type: 'function', function: { name: 'read', arguments: '{}' } };
    const messages = [
      { role: 'user', content: 'Read it' },
      { role: 'assistant', content: null, tool_calls: [call] },
      { role: 'tool', tool_call_id: 'call_1', content: 'x'.repeat(100) },
    ];
    const r = await postJson(`${s.url}/v1/chat/completions`, { model: 'tiny', messages, max_tokens: 4, temperature: 0 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const cut = r.json.attn.context;
    assert.equal(cut.capped_tool_messages, 1);
    assert.equal(cut.dropped_messages, 0);
    assert.ok(cut.tokens_saved >= 100 - 20 - 25, `saved ${cut.tokens_saved}`);
  });

  it('summarize: the dropped turns become a summary by the named model, cached for the next request', async () => {
    const messages = longChat(12);
    const a = await postJson(`${s.url}/v1/chat/completions`, { model: 'other', messages, max_tokens: 8, temperature: 0 });
    assert.equal(a.status, 200, JSON.stringify(a.json));
    const cut = a.json.attn.context;
    assert.equal(cut.budget_tokens, 256 - 16);
    assert.ok(cut.summarized_messages > 0 && cut.summarized_messages === cut.dropped_messages);
    assert.equal(cut.summary_cached, false);
    const b = await postJson(`${s.url}/v1/chat/completions`, { model: 'other', messages, max_tokens: 8, temperature: 0 });
    assert.equal(b.json.attn.context.summary_cached, true);
    assert.deepEqual({ ...b.json.attn.context, summary_cached: false }, cut, 'the same cut, from the cache');
    assert.match(await metricsText(s), /attn_completion_tokens_total\{model="sum"\} [1-9]/);
  });

  it('a system prompt larger than the budget is a 400 that names it; a disabled policy keeps the old 400', async () => {
    const big = await postJson(`${s.url}/v1/chat/completions`, { model: 'tiny', messages: longChat(1, 'S'.repeat(300)), max_tokens: 8 });
    assert.equal(big.status, 400);
    assert.equal(big.json.error.code, 'context_length_exceeded');
    assert.match(big.json.error.message, /The system prompt alone has \d+ tokens, but model tiny's context budget is 255 tokens \(its context is 256\)/);
    const lastTurn = await postJson(`${s.url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'q'.repeat(300) }], max_tokens: 8 });
    assert.equal(lastTurn.status, 400);
    assert.match(lastTurn.json.error.message, /The last turn of the conversation needs \d+ tokens/);
    const off = await postJson(`${s.url}/v1/chat/completions`, { model: 'sum', messages: longChat(12), max_tokens: 8 });
    assert.equal(off.status, 400);
    assert.equal(off.json.error.code, 'context_length_exceeded');
  });

  it('the reserve for the answer is a wish: a single turn that fits the context is served as it is', async () => {
    const r = await postJson(`${s.url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'q'.repeat(230) }], max_tokens: 64, temperature: 0 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.equal(r.json.attn, undefined);
    assert.equal(r.json.choices[0].finish_reason, 'length');
  });

  it('the config names served models and a summarizer for "summarize"', async () => {
    await assert.rejects(startTiny({ configInput: { context_budget: { models: { nope: {} } } } }), /context_budget\.models: "nope" is not a served model/);
    await assert.rejects(startTiny({ configInput: { context_budget: { default: { strategy: 'summarize', summarizer: 'gone' } } } }), /context_budget\.default\.summarizer: "gone" is not a served model/);
    assert.throws(() => parseServeConfig({ context_budget: { default: { strategy: 'summarize' } } }), /context_budget\.default\.summarizer: strategy "summarize" needs a summarizer/);
    assert.throws(() => parseServeConfig({ context_budget: { default: { max_tool_tokenz: 3 } } }), /max_tool_tokenz/);
  });
});
