import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { setBackend } from '../src/backend/index.js';
import { generate } from '../src/generate/engine.js';
import { renderChat } from '../src/serve/chat_template.js';
import { meanPooledEmbedding } from '../src/serve/pooled_embedding.js';
import type { AttnServer } from '../src/serve/server.js';
import { assertClose } from './helpers.js';
import { startTiny, tinyGPT, tinyTokenizer } from './serve_fixture.js';

/** The official client, as any OpenAI user would point it at attn. */
const clientFor = (s: AttnServer, apiKey = 'unused') => new OpenAI({ baseURL: `${s.url}/v1`, apiKey, maxRetries: 0 });

/** What the engine generates alone for a text prompt (greedy): the reference for the server's answers. */
function greedyText(prompt: string, maxTokens: number): string {
  const tok = tinyTokenizer();
  return tok.decode([...generate(tinyGPT(3), tok.encode(prompt), { maxNewTokens: maxTokens, temperature: 0 })]);
}

describe('attn serve with the openai client', () => {
  let server: AttnServer;
  let client: OpenAI;
  before(async () => {
    setBackend('js');
    server = await startTiny({ cache: null }); // exact texts: the semantic cache is tested in serve.test.ts
    client = clientFor(server);
  });
  after(() => server.close());

  it('lists the models', async () => {
    const ids = [];
    for await (const m of client.models.list()) ids.push(m.id);
    assert.deepEqual(ids, ['tiny', 'auto']);
    assert.equal((await client.models.retrieve('tiny')).id, 'tiny');
  });

  it('completes a prompt: the engine\'s greedy text, with usage', async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: 'Hello there', max_tokens: 12, temperature: 0 });
    assert.equal(r.object, 'text_completion');
    assert.equal(r.choices[0]!.text, greedyText('Hello there', 12));
    assert.equal(r.choices[0]!.finish_reason, 'length');
    assert.deepEqual(r.usage, { prompt_tokens: 11, completion_tokens: 12, total_tokens: 23 });
    assert.match(r.id, /^cmpl-/);
  });

  it('streams a completion: the same text in chunks, usage at the end', async () => {
    const stream = await client.completions.create({ model: 'tiny', prompt: 'Hello there', max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true } });
    let text = '';
    let usage = null;
    let finish = null;
    let chunks = 0;
    for await (const c of stream) {
      chunks++;
      text += c.choices[0]?.text ?? '';
      finish = c.choices[0]?.finish_reason ?? finish;
      if (c.usage) usage = c.usage;
    }
    assert.equal(text, greedyText('Hello there', 12));
    assert.ok(chunks >= 12);
    assert.equal(finish, 'length');
    assert.deepEqual(usage, { prompt_tokens: 11, completion_tokens: 12, total_tokens: 23 });
  });

  it('chats through the default template, streamed and not', async () => {
    const messages = [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: 'Hi' }];
    const prompt = renderChat(messages);
    assert.equal(prompt, 'system: Be brief.\nuser: Hi\nassistant:');
    const r = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 10, temperature: 0 });
    const want = greedyText(prompt, 10).split('\nuser:')[0]!.split('\nsystem:')[0]!;
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0]!.message.role, 'assistant');
    assert.equal(r.choices[0]!.message.content, want);
    assert.equal(r.usage!.prompt_tokens, prompt.length);
    const stream = await client.chat.completions.create({ model: 'tiny', messages, max_tokens: 10, temperature: 0, stream: true });
    let text = '';
    let role = null;
    for await (const c of stream) {
      text += c.choices[0]?.delta.content ?? '';
      role ??= c.choices[0]?.delta.role ?? null;
    }
    assert.equal(text, want);
    assert.equal(role, 'assistant');
  });

  it('embeds text: mean-pooled hidden states of unit length, float and base64 alike', async () => {
    const r = await client.embeddings.create({ model: 'tiny', input: ['Hello', 'Hello there'] }); // the client asks for base64
    assert.equal(r.data.length, 2);
    const v = Float32Array.from(r.data[0]!.embedding);
    assert.equal(v.length, 32);
    assertClose([Math.hypot(...v)], [1], 1e-5);
    assertClose(v, meanPooledEmbedding(tinyGPT(3), tinyTokenizer().encode('Hello')), 1e-5);
    const f = await client.embeddings.create({ model: 'tiny', input: 'Hello', encoding_format: 'float' });
    assertClose(f.data[0]!.embedding, v, 1e-6);
    assert.deepEqual(r.usage, { prompt_tokens: 16, total_tokens: 16 });
  });

  it('serves concurrent streams together, each its own text', async () => {
    const prompts = Array.from({ length: 8 }, (_, i) => `Prompt number ${i}:`);
    const texts = await Promise.all(prompts.map(async (prompt, i) => {
      const s = await client.completions.create({ model: 'tiny', prompt, max_tokens: 8 + i, temperature: 0, stream: true });
      let t = '';
      for await (const c of s) t += c.choices[0]?.text ?? '';
      return t;
    }));
    texts.forEach((t, i) => assert.equal(t, greedyText(prompts[i]!, 8 + i), `stream ${i}`));
  });

  it('gives n choices and several prompts, each a choice of its own', async () => {
    const r = await client.completions.create({ model: 'tiny', prompt: ['abc', 'xyz'], max_tokens: 5, temperature: 0 });
    assert.deepEqual(r.choices.map((c) => c.text), [greedyText('abc', 5), greedyText('xyz', 5)]);
    const s = await client.completions.create({ model: 'tiny', prompt: 'abc', max_tokens: 6, temperature: 1, n: 3, seed: 7 });
    assert.equal(s.choices.length, 3);
    assert.equal(s.usage!.completion_tokens, 18);
    const again = await client.completions.create({ model: 'tiny', prompt: 'abc', max_tokens: 6, temperature: 1, n: 3, seed: 7 });
    assert.deepEqual(again.choices.map((c) => c.text), s.choices.map((c) => c.text), 'a seed repeats');
  });

  it('ends at a stop string, which is not returned', async () => {
    const full = greedyText('Hello there', 20);
    const stop = full.slice(5, 7);
    const r = await client.completions.create({ model: 'tiny', prompt: 'Hello there', max_tokens: 20, temperature: 0, stop });
    assert.equal(r.choices[0]!.text, full.slice(0, full.indexOf(stop)));
    assert.equal(r.choices[0]!.finish_reason, 'stop');
  });

  it('reports errors as the client\'s exceptions, with the field named', async () => {
    await assert.rejects(client.completions.create({ model: 'nope', prompt: 'x' }), (e: any) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
    await assert.rejects(client.completions.create({ model: 'tiny', prompt: 'x', temperature: 3 }), (e: any) => e instanceof OpenAI.BadRequestError && e.param === 'temperature');
  });
});
