import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ChatTemplate } from '../src/chat/template.js';
import { chatJob, sequenceParams } from '../src/serve/completion_job.js';
import { ChatRequestSchema } from '../src/serve/request_schemas.js';
import { serveModel } from '../src/serve/served_model.js';
import type { AttnServer } from '../src/serve/server.js';
import { startServer } from '../src/serve/server.js';
import { HFTokenizer } from '../src/tokenizers/hf/pipeline.js';
import { CharTokenizer } from '../src/tokenizers/char.js';
import { postJson, silentLogger, tinyGPT } from './serve_fixture.js';
import { validate } from '../src/serve/validation.js';

/** A character-level Hugging Face tokenizer (printable ASCII, newline) with ChatML's tokens and a template. */
function chatTokenizer(chatTemplate: string): HFTokenizer {
  const chars = [...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)), '\n'];
  const vocab = Object.fromEntries(chars.map((c, i) => [c, i]));
  const added = ['<|im_start|>', '<|im_end|>'].map((content, i) => ({ id: chars.length + i, content, special: true, normalized: false }));
  return new HFTokenizer(
    { model: { type: 'BPE', vocab: { ...vocab, '<|im_start|>': 96, '<|im_end|>': 97 }, merges: [] }, added_tokens: added, normalizer: null, pre_tokenizer: null, post_processor: null, decoder: null },
    { chat_template: chatTemplate, eos_token: '<|im_end|>' },
  );
}

const CHATML =
  "{% for m in messages %}{% if m.role == 'assistant' and loop.first %}{{ raise_exception('the first message cannot be the assistant\\'s') }}{% endif %}" +
  "{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

describe('serve renders chats with the model\'s own chat template', () => {
  let server: AttnServer;
  const tokenizer = chatTokenizer(CHATML);
  const model = tinyGPT(3, 96, 98);
  before(async () => {
    server = await startServer({ models: [{ name: 'chatml', model, tokenizer }, { name: 'plain', model, tokenizer: new CharTokenizer(tokenizer.decode(Int32Array.from({ length: 96 }, (_, i) => i)).split('')) }], port: 0, logger: silentLogger() });
  });
  after(() => server.close());

  const messages = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi!' },
  ];

  it('the prompt is the template\'s rendering, its special tokens encoded as themselves', async () => {
    const r = await postJson(`${server.url}/v1/chat/completions`, { model: 'chatml', messages, max_tokens: 3, temperature: 0 });
    assert.equal(r.status, 200, JSON.stringify(r.json));
    const text = new ChatTemplate(CHATML, {}).render(messages, { addGenerationPrompt: true });
    const ids = tokenizer.encode(text, { allowedSpecial: 'all' });
    assert.ok(ids.includes(96) && ids.includes(97));
    assert.equal(r.json.usage.prompt_tokens, ids.length);
    // The same messages as attn's plain transcript ("system: Be brief.\nuser: Hi!\nassistant:") are fewer tokens.
    const plain = await postJson(`${server.url}/v1/chat/completions`, { model: 'plain', messages, max_tokens: 3, temperature: 0 });
    assert.equal(plain.json.usage.prompt_tokens, 'system: Be brief.\nuser: Hi!\nassistant:'.length);
  });

  it('stops at the template\'s end-of-turn token instead of the plain transcript\'s "\\nuser:"', () => {
    const served = serveModel('chatml', model, tokenizer, { maxBatch: 1, maxQueue: 1 });
    const job = chatJob(validate(ChatRequestSchema, { model: 'chatml', messages, stop: ['END'] }));
    const limits = { defaultMaxTokens: 16, maxTokensCap: 64 } as Parameters<typeof sequenceParams>[2];
    const p = sequenceParams(job, served, limits, 0, 1);
    assert.deepEqual(p.stopTokens, [97]);
    assert.deepEqual(p.stop, ['END']);
    const plain = serveModel('plain', model, new CharTokenizer(['a', 'b']), { maxBatch: 1, maxQueue: 1 });
    const q = sequenceParams(job, plain, limits, 0, 1);
    assert.deepEqual(q.stop, ['END', '\nuser:', '\nsystem:']);
  });

  it('a template that fails to render is a 400 with the template\'s own message', async () => {
    const r = await postJson(`${server.url}/v1/chat/completions`, { model: 'chatml', messages: [{ role: 'assistant', content: 'Hello' }] });
    assert.equal(r.status, 400);
    assert.match(r.json.error.message, /chat template failed to render: the first message cannot be the assistant's/);
    assert.equal(r.json.error.param, 'messages');
  });
});
