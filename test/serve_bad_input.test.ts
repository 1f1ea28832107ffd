import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import type { AttnServer } from '../src/serve/server.js';
import { Rng } from '../src/util/rng.js';
import { postJson, startTiny } from './serve_fixture.js';

/** A 4xx in OpenAI's error format with a short, one-line message (no stack trace). */
function assertClearError(r: { status: number; json: any }, what: string): void {
  assert.ok(r.status >= 400 && r.status < 500, `${what}: status ${r.status} ${JSON.stringify(r.json)}`);
  const e = r.json?.error;
  assert.ok(e && typeof e.message === 'string' && e.message.length > 0 && e.message.length < 400, `${what}: ${JSON.stringify(r.json)}`);
  assert.ok(!/\n\s+at /.test(e.message), `${what}: a stack trace in ${e.message}`);
  assert.equal(typeof e.type, 'string');
}

const GOOD = { model: 'tiny', prompt: 'Hello', max_tokens: 3, temperature: 0 };
const GOOD_CHAT = { model: 'tiny', messages: [{ role: 'user', content: 'Hi' }], max_tokens: 3 };

/** Values that are wrong for each field, whatever else the request holds. */
const BAD: Record<string, unknown[]> = {
  model: [5, null, '', [], {}, 'nope'],
  prompt: [5, null, {}, [[]], [-1], [1.5], [true], [1000], 'x'.repeat(100), ['a', 5]],
  max_tokens: [-1, 0, 1e9, 1.5, 'ten', true],
  temperature: [-1, 2.01, 'hot', {}, []],
  top_p: [0, -0.5, 1.01, 'x'],
  top_k: [0, -3, 2.5],
  n: [0, 9, 1.5, '2'],
  stop: ['', [''], ['a', 'b', 'c', 'd', 'e'], 5, [5]],
  seed: ['x', 1.5],
  stream: ['yes', 1],
  metadata: ['x', 5, { task: 5 }, { task: 'bad task!' }, { cache: 'maybe' }],
  presence_penalty: [0.5],
  logprobs: [true],
  echo: [true],
  best_of: [3],
  response_format: [{ type: 'xml' }, 'json', 5],
  repetition_penalty: [0, -1, 11],
};
const BAD_CHAT: Record<string, unknown[]> = {
  messages: [null, [], 'hi', [{ role: 'robot', content: 'x' }], [{ role: 'user', content: 5 }], [{ content: 'x' }], [{ role: 'user', content: 'x'.repeat(100) }], [{ role: 'user' }], [{ role: 'system', content: null }]],
  max_completion_tokens: [0, -5, 'x'],
};

/** Bytes that are not a JSON object. */
const NOT_OBJECTS = ['', '{', '{"model":', 'nul', '[1,2', '"just a string"', '42', 'null', '[]', '[{"model":"tiny"}]', '\u0000\u0001', '{"model":"tiny",}', "{'model':'tiny'}"];

function garbage(rng: Rng): { path: string; body: string } {
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)]!;
  const kind = rng.int(10);
  if (kind === 0) return { path: pick(['/v1/completions', '/v1/chat/completions', '/v1/embeddings', '/v1/feedback']), body: pick(NOT_OBJECTS) };
  if (kind === 1) {
    // Random bytes, mostly not even UTF-8.
    const n = 1 + rng.int(64);
    return { path: '/v1/completions', body: Buffer.from(Array.from({ length: n }, () => rng.int(256))).toString('latin1') };
  }
  if (kind === 2) return { path: '/v1/embeddings', body: JSON.stringify(pick([{}, { model: 'tiny' }, { model: 'tiny', input: '' }, { model: 'tiny', input: [] }, { model: 'tiny', input: 'x'.repeat(100) }, { model: 'nope', input: 'a' }, { model: 'tiny', input: 'a', dimensions: 3 }, { model: 'tiny', input: 'a', encoding_format: 'hex' }])) };
  if (kind === 3) return { path: '/v1/feedback', body: JSON.stringify(pick([{}, { id: 5, success: true }, { id: 'x' }, { id: 'x', success: 'yes' }, { id: 'never-seen', success: true }])) };
  const chat = kind >= 8;
  const body: Record<string, unknown> = structuredClone(chat ? GOOD_CHAT : GOOD);
  const table = chat ? { ...BAD, ...BAD_CHAT } : BAD;
  const fields = Object.keys(table).filter((f) => !(chat && (f === 'prompt' || f === 'echo' || f === 'best_of')));
  for (let i = 0, n = 1 + rng.int(3); i < n; i++) {
    const f = pick(fields);
    body[f] = pick(table[f]!);
  }
  return { path: chat ? '/v1/chat/completions' : '/v1/completions', body: JSON.stringify(body) };
}

describe('serve: bad input', () => {
  let s: AttnServer;
  before(async () => {
    setBackend('js');
    s = await startTiny({ cache: null });
  });
  after(() => s.close());

  const cases: Array<[string, unknown, number, string | null]> = [
    ['malformed JSON', '{"model": "tiny", "prompt": ', 400, null],
    ['a JSON array', [GOOD], 400, null],
    ['no model', { prompt: 'x' }, 400, 'model'],
    ['model of the wrong type', { ...GOOD, model: 7 }, 400, 'model'],
    ['an unknown model', { ...GOOD, model: 'gpt-9' }, 404, 'model'],
    ['a negative max_tokens', { ...GOOD, max_tokens: -5 }, 400, 'max_tokens'],
    ['a huge max_tokens', { ...GOOD, max_tokens: 10_000_000 }, 400, 'max_tokens'],
    ['temperature out of range', { ...GOOD, temperature: 2.5 }, 400, 'temperature'],
    ['top_p out of range', { ...GOOD, top_p: 0 }, 400, 'top_p'],
    ['a prompt over the context', { ...GOOD, prompt: 'y'.repeat(65) }, 400, 'prompt'],
    ['a token id outside the vocabulary', { ...GOOD, prompt: [1, 2, 500] }, 400, 'prompt'],
    ['a character outside the vocabulary', { ...GOOD, prompt: 'naïve' }, 400, 'prompt'],
    ['an empty stop string', { ...GOOD, stop: [''] }, 400, 'stop[0]'],
    ['an unsupported option', { ...GOOD, presence_penalty: 1 }, 400, 'presence_penalty'],
  ];
  for (const [what, body, status, param] of cases) {
    it(`${what}: ${status}${param ? ` naming ${param}` : ''}`, async () => {
      const r = await postJson(`${s.url}/v1/completions`, body);
      assertClearError(r, what);
      assert.equal(r.status, status, JSON.stringify(r.json));
      if (param) assert.equal(r.json.error.param, param);
    });
  }

  it('a chat message with an unknown role names it', async () => {
    const r = await postJson(`${s.url}/v1/chat/completions`, { model: 'tiny', messages: [{ role: 'user', content: 'a' }, { role: 'robot', content: 'b' }] });
    assertClearError(r, 'role');
    assert.equal(r.json.error.param, 'messages[1].role');
  });

  it('a chat message without content: 400 naming messages[i].content (an assistant\'s with tool_calls may have none)', async () => {
    const url = `${s.url}/v1/chat/completions`;
    const missing = await postJson(url, { model: 'tiny', messages: [{ role: 'user' }] });
    assertClearError(missing, 'no content');
    assert.equal(missing.status, 400);
    assert.equal(missing.json.error.param, 'messages[0].content');
    assert.match(missing.json.error.message, /Missing required parameter: 'messages\[0\]\.content'/);
    for (const role of ['user', 'system', 'tool']) {
      const r = await postJson(url, { model: 'tiny', messages: [{ role: 'user', content: 'a' }, { role, content: null, ...(role === 'tool' ? { tool_call_id: 'call_1' } : {}) }] });
      assertClearError(r, `${role} content null`);
      assert.equal(r.status, 400, role);
      assert.equal(r.json.error.param, 'messages[1].content');
    }
    const call = { id: 'call_1', type: 'function', function: { name: 'add', arguments: '{}' } };
    // Past validation (the tiny model's 64-token context is then too short for the tool prompt: another 400).
    const ok = await postJson(url, { model: 'tiny', messages: [{ role: 'user', content: 'a' }, { role: 'assistant', content: null, tool_calls: [call] }, { role: 'tool', tool_call_id: 'call_1', content: '3' }], max_tokens: 2 });
    assert.equal(ok.json.error?.code, 'context_length_exceeded', JSON.stringify(ok.json));
  });

  it('wrong routes and methods', async () => {
    const r = await fetch(`${s.url}/v1/completions`);
    assert.equal(r.status, 405);
    assert.equal(r.headers.get('allow'), 'POST');
    assert.equal((await fetch(`${s.url}/v2/nothing`)).status, 404);
    assert.equal((await fetch(`${s.url}/v1/models/%E0%A4%A`)).status, 400);
    assert.equal((await fetch(`${s.url}/v1/models/nope`)).status, 404);
  });

  it('1 000 random garbage requests in a row: each a clear 4xx, and the server keeps serving', async () => {
    const rng = new Rng(2024);
    const statuses = new Map<number, number>();
    for (let i = 0; i < 1000; i++) {
      const g = garbage(rng);
      const r = await postJson(`${s.url}${g.path}`, g.body);
      assertClearError(r, `request ${i}: ${g.path} ${g.body.slice(0, 200)}`);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    }
    assert.ok((statuses.get(400) ?? 0) > 500, JSON.stringify([...statuses]));
    const ok = await postJson(`${s.url}/v1/completions`, GOOD);
    assert.equal(ok.status, 200);
    assert.equal(ok.json.usage.completion_tokens, 3);
    assert.equal(s.context.models.get('tiny')!.scheduler.batchSize, 0);
  });
});
