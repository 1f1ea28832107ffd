import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Ajv } from 'ajv';
import OpenAI from 'openai';
import { setBackend } from '../src/backend/index.js';
import { randomSchemas } from '../src/bench/random_schemas.js';
import type { AttnServer } from '../src/serve/server.js';
import { postJson, startTiny } from './serve_fixture.js';

const ajv = new Ajv({ strict: false });
const metricsText = async (s: AttnServer) => (await fetch(`${s.url}/metrics`)).text();

const ORDER = {
  type: 'object',
  properties: {
    item: { type: 'string', maxLength: 12 },
    qty: { type: 'integer' },
    size: { enum: ['S', 'M', 'L'] },
    gift: { type: 'boolean' },
    notes: { anyOf: [{ type: 'string' }, { type: 'null' }] },
  },
  required: ['item', 'qty', 'size', 'gift', 'notes'],
  additionalProperties: false,
};

function assertValid(schema: object, text: string | null | undefined): void {
  assert.ok(typeof text === 'string', 'content is text');
  const value = JSON.parse(text);
  const validate = ajv.compile(schema);
  assert.ok(validate(value), `${text}: ${ajv.errorsText(validate.errors)}`);
}

describe('serve: response_format by constrained decoding', () => {
  let s: AttnServer;
  let client: OpenAI;
  before(async () => {
    setBackend('js');
    s = await startTiny({ blockSize: 256, cache: null });
    client = new OpenAI({ baseURL: `${s.url}/v1`, apiKey: 'unused', maxRetries: 0 });
  });
  after(() => s.close());

  it('json_schema (strict): every sampled answer validates, streamed or not', async () => {
    const response_format = { type: 'json_schema' as const, json_schema: { name: 'order', schema: ORDER, strict: true } };
    for (let seed = 0; seed < 4; seed++) {
      const r = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Order a shirt as JSON' }], max_tokens: 120, temperature: 1.2, seed, response_format });
      assertValid(ORDER, r.choices[0]!.message.content);
      assert.equal(r.choices[0]!.finish_reason, 'stop');
    }
    const stream = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'Again' }], max_tokens: 120, temperature: 1.2, seed: 9, response_format, stream: true });
    let text = '';
    for await (const c of stream) text += c.choices[0]?.delta.content ?? '';
    assertValid(ORDER, text);
  });

  it('50 generated schemas on /v1/completions, with budgets from tight to loose: all valid', async () => {
    const schemas = randomSchemas(50, 11).filter((x) => !JSON.stringify(x).match(/[^\x20-\x7e]/)); // the tiny vocabulary is ASCII
    assert.ok(schemas.length >= 25);
    for (const [i, schema] of schemas.entries()) {
      const r = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: `{`, max_tokens: 40 + (i % 4) * 40, temperature: 1, seed: i, response_format: { type: 'json_schema', json_schema: { name: `s${i}`, schema } } });
      if (r.status === 400) {
        assert.match(r.json.error.message, /are too few for the shortest valid answer/, JSON.stringify(r.json));
        continue;
      }
      assert.equal(r.status, 200, JSON.stringify(r.json));
      assertValid(schema, r.json.choices[0].text);
    }
  });

  it('json_object: an object, and the metric counts constrained requests', async () => {
    const r = await client.chat.completions.create({ model: 'tiny', messages: [{ role: 'user', content: 'JSON' }], max_tokens: 30, temperature: 1, seed: 3, response_format: { type: 'json_object' } });
    const v = JSON.parse(r.choices[0]!.message.content!);
    assert.ok(typeof v === 'object' && v !== null && !Array.isArray(v));
    assert.match(await metricsText(s), /attn_constrained_requests_total\{model="tiny",kind="json_object"\} 1/);
  });

  it('bad schemas and budgets: 400s in OpenAI\'s format naming the problem', async () => {
    const ask = (response_format: unknown, max_tokens = 50) => postJson(`${s.url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'x' }], max_tokens, response_format });
    const pattern = await ask({ type: 'json_schema', json_schema: { name: 'p', schema: { type: 'object', properties: { a: { type: 'string', pattern: '^x' } } } } });
    assert.equal(pattern.status, 400);
    assert.equal(pattern.json.error.param, 'response_format.json_schema.schema');
    assert.equal(pattern.json.error.code, 'invalid_schema');
    assert.match(pattern.json.error.message, /#\/properties\/a: keyword "pattern" is not supported/);
    const strict = await ask({ type: 'json_schema', json_schema: { name: 'p', strict: true, schema: { type: 'object', properties: { a: { type: 'string' } } } } });
    assert.match(strict.json.error.message, /additionalProperties/);
    const missing = await ask({ type: 'json_schema' });
    assert.equal(missing.json.error.param, 'response_format.json_schema');
    const tight = await ask({ type: 'json_schema', json_schema: { name: 'o', schema: ORDER } }, 10);
    assert.equal(tight.status, 400);
    assert.equal(tight.json.error.param, 'max_tokens');
  });
});

describe('serve: models without constrained decoding keep the router\'s check', () => {
  let s: AttnServer;
  before(async () => {
    setBackend('js');
    s = await startTiny({ names: ['free', 'strict'], cache: null, configInput: { routing: { tiers: ['free', 'strict'] }, structured_outputs: { constrained_decoding: ['strict'] } } });
  });
  after(() => s.close());

  it('the free model fails the JSON check (counted), the constrained one answers', async () => {
    const r = await postJson(`${s.url}/v1/chat/completions`, { model: 'auto', messages: [{ role: 'user', content: 'JSON' }], max_tokens: 20, temperature: 0, response_format: { type: 'json_object' } });
    assert.equal(r.status, 200);
    assert.equal(r.json.model, 'strict');
    assert.equal(r.headers.get('x-attn-escalations'), '1');
    JSON.parse(r.json.choices[0].message.content);
    const m = await metricsText(s);
    assert.match(m, /attn_response_check_failures_total\{model="free",format="json_object"\} 1/);
    assert.doesNotMatch(m, /attn_response_check_failures_total\{model="strict"/);
  });
});
