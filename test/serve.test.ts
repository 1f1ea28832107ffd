import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { after, before, describe, it } from 'node:test';
import OpenAI from 'openai';
import { setBackend } from '../src/backend/index.js';
import { apiKeysFrom } from '../src/serve/auth.js';
import { createLogger } from '../src/serve/logging.js';
import type { AttnServer } from '../src/serve/server.js';
import { postJson, startTiny, tinyModelDir, until } from './serve_fixture.js';

const MAIN = 'dist/src/cli/main.js';
const clientFor = (s: AttnServer, apiKey = 'unused') => new OpenAI({ baseURL: `${s.url}/v1`, apiKey, maxRetries: 0 });
const scheduler = (s: AttnServer, name = 'tiny') => s.context.models.get(name)!.scheduler;
const run = (args: string[]) =>
  new Promise<{ status: number | null; stdout: string; stderr: string }>((ok) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.once('exit', (status) => ok({ status, stdout, stderr }));
  });
const metricsText = async (s: AttnServer) => (await fetch(`${s.url}/metrics`)).text();

before(() => setBackend('js'));

describe('serve: limits and protection', () => {
  it('413 for a body over the limit', async () => {
    const s = await startTiny({ limits: { maxBodyBytes: 1000 } });
    try {
      const r = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'x'.repeat(2000) });
      assert.equal(r.status, 413);
      assert.equal(r.json.error.code, 'request_too_large');
    } finally {
      await s.close();
    }
  });

  it('429 with Retry-After when the queue is full', async () => {
    const s = await startTiny({ blockSize: 4096, limits: { maxBatch: 1, maxQueue: 1 }, cache: null });
    const client = clientFor(s);
    try {
      const running = await client.completions.create({ model: 'tiny', prompt: 'a', max_tokens: 3000, stream: true, temperature: 0 });
      await until(() => scheduler(s).batchSize === 1, 5000, 'the first request to run');
      const queued = client.completions.create({ model: 'tiny', prompt: 'b', max_tokens: 2, temperature: 0 });
      await until(() => scheduler(s).queueDepth === 1, 5000, 'the second request to wait');
      const r = await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'c', max_tokens: 2 });
      assert.equal(r.status, 429);
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(r.json.error.type, 'rate_limit_error');
      await assert.rejects(client.completions.create({ model: 'tiny', prompt: 'd', max_tokens: 2 }), OpenAI.RateLimitError);
      running.controller.abort();
      assert.equal((await queued).choices[0]!.text.length, 2);
    } finally {
      await s.close();
    }
  });

  it('401 without a valid key when keys are set; /health stays open', async () => {
    const s = await startTiny({ apiKeys: ['k1', 'k2'] });
    try {
      await assert.rejects(clientFor(s, 'wrong').models.list(), OpenAI.AuthenticationError);
      const bare = await fetch(`${s.url}/v1/models`);
      assert.equal(bare.status, 401);
      assert.equal(((await bare.json()) as any).error.code, 'missing_api_key');
      assert.equal((await clientFor(s, 'k2').models.list()).data[0]!.id, 'tiny');
      assert.equal((await fetch(`${s.url}/health`)).status, 200);
    } finally {
      await s.close();
    }
    assert.deepEqual(apiKeysFrom(['a'], ' b, c ,,'), ['a', 'b', 'c']);
  });

  it('a client that disconnects is removed from the batch at once', async () => {
    const s = await startTiny({ blockSize: 4096, cache: null });
    try {
      const stream = await clientFor(s).completions.create({ model: 'tiny', prompt: 'a', max_tokens: 4000, stream: true, temperature: 0 });
      let n = 0;
      for await (const _ of stream) if (++n === 5) break; // leaving the loop aborts the request
      await until(() => scheduler(s).batchSize === 0, 1000, 'the sequence to leave the batch');
      let m = '';
      for (let i = 0; i < 100 && !m.includes('status="499"'); i++) m = await metricsText(s);
      assert.match(m, /attn_requests_total\{route="completions",model="tiny",status="499"\} 1/);
    } finally {
      await s.close();
    }
  });

  it('a request over its time limit ends with 504 (an error event when streaming)', async () => {
    const s = await startTiny({ blockSize: 4096, limits: { requestTimeoutMs: 100 }, cache: null });
    const client = clientFor(s);
    try {
      await assert.rejects(client.completions.create({ model: 'tiny', prompt: 'a', max_tokens: 4000, temperature: 0 }), (e: any) => e.status === 504 && e.code === 'timeout');
      const stream = await client.completions.create({ model: 'tiny', prompt: 'a', max_tokens: 4000, temperature: 0, stream: true });
      await assert.rejects(async () => {
        for await (const _ of stream);
      }, /longer than the server allows/);
      assert.equal(scheduler(s).batchSize, 0);
    } finally {
      await s.close();
    }
  });

  it('graceful shutdown: running requests finish, new ones are refused', async () => {
    const s = await startTiny({ cache: null });
    const client = clientFor(s);
    const running = client.completions.create({ model: 'tiny', prompt: 'a', max_tokens: 40, temperature: 0 });
    await until(() => scheduler(s).batchSize === 1, 5000, 'the request to run');
    const closed = s.close(5000);
    assert.equal((await running).usage!.completion_tokens, 40);
    await closed;
    await assert.rejects(fetch(`${s.url}/health`));
  });

  it('shutdown past its deadline cancels what still runs', async () => {
    const s = await startTiny({ blockSize: 4096, cache: null });
    const stream = await clientFor(s).completions.create({ model: 'tiny', prompt: 'a', max_tokens: 4000, temperature: 0, stream: true });
    const read = (async () => {
      for await (const _ of stream);
    })().then(
      () => null,
      (e: Error) => e,
    );
    await until(() => scheduler(s).batchSize === 1, 5000, 'the request to run');
    const t0 = Date.now();
    await s.close(50);
    assert.ok(Date.now() - t0 < 2000, 'closed soon after the deadline');
    assert.match(String(await read), /shutting down/);
  });
});

describe('serve: economics, cache, routing, observability', () => {
  let s: AttnServer;
  before(async () => {
    s = await startTiny({
      names: ['small', 'large'],
      configInput: {
        prices: { small: { input_per_million: 1e6, output_per_million: 2e6 }, large: { input_per_million: 1e7, output_per_million: 2e7 } },
        routing: { tiers: ['small', 'large'], rules: [{ task: 'code', start: 'large' }] },
        // No sentence embedder here: the cache keys on the requesting GPT's pooled states, which must be asked for.
        cache: { allow_gpt_embeddings: true },
        // The escalation below is for models that sample JSON freely (constrained decoding is tested in test/constrained_serve.test.ts).
        structured_outputs: { constrained_decoding: false },
      },
    });
  });
  after(() => s.close());

  it('answers a repeated greedy prompt from the semantic cache; cost counts the prompt only', async () => {
    const body = { model: 'small', prompt: 'The cached question', max_tokens: 6, temperature: 0 };
    const a = await postJson(`${s.url}/v1/completions`, body);
    const b = await postJson(`${s.url}/v1/completions`, body);
    assert.equal(a.headers.get('x-attn-cache'), 'miss');
    assert.equal(b.headers.get('x-attn-cache'), 'hit');
    assert.equal(b.json.choices[0].text, a.json.choices[0].text);
    assert.deepEqual(b.json.usage, a.json.usage);
    const other = await postJson(`${s.url}/v1/completions`, { ...body, max_tokens: 7 });
    assert.equal(other.headers.get('x-attn-cache'), 'miss', 'other settings, other entry');
    const sampled = await postJson(`${s.url}/v1/completions`, { ...body, temperature: 0.8 });
    assert.equal(sampled.headers.get('x-attn-cache'), 'miss', 'sampled requests skip the cache');
    const report = (await (await fetch(`${s.url}/v1/ledger`)).json()) as any;
    const small = report.by_model.find((m: any) => m.model === 'small');
    // 19 prompt tokens at $1 and 6 completion tokens at $2 per token: 31; the hit pays its prompt only: 19.
    assert.equal(small.cost, 31 + 19 + (19 + 14) + (19 + 12));
    assert.match(await metricsText(s), /attn_cache_hits_total\{model="small"\} 1/);
  });

  it('routes "auto" by task and escalates when json_object does not parse', async () => {
    const client = clientFor(s);
    const r = await client.chat.completions.create({ model: 'auto', messages: [{ role: 'user', content: 'JSON please' }], max_tokens: 5, temperature: 0, response_format: { type: 'json_object' } }).withResponse();
    assert.equal(r.data.model, 'large');
    assert.equal(r.response.headers.get('x-attn-escalations'), '1');
    const code = await postJson(`${s.url}/v1/completions`, { model: 'auto', prompt: 'def f():', max_tokens: 3, temperature: 0, metadata: { task: 'code' } });
    assert.equal(code.json.model, 'large');
    assert.equal(code.headers.get('x-attn-escalations'), '0');
    const plain = await postJson(`${s.url}/v1/completions`, { model: 'auto', prompt: 'hello', max_tokens: 3, temperature: 0 }, { 'x-attn-task': 'chat' });
    assert.equal(plain.json.model, 'small');
    assert.match(await metricsText(s), /attn_escalations_total\{from="small",to="large"\} 1/);
  });

  it('an escalated request pays for the failed cheaper attempt too (ledger and metrics)', async () => {
    const ledger = async () => (await (await fetch(`${s.url}/v1/ledger`)).json()) as any;
    const promptTokens = async (model: string) => Number((await metricsText(s)).match(new RegExp(`^attn_prompt_tokens_total\\{model="${model}"\\} (\\d+)`, 'm'))?.[1] ?? 0);
    const before = await ledger();
    const smallBefore = before.by_model.find((m: any) => m.model === 'small') ?? { requests: 0, prompt_tokens: 0, completion_tokens: 0, cost: 0 };
    const metricBefore = await promptTokens('small');
    const r = await postJson(`${s.url}/v1/completions`, { model: 'auto', prompt: 'Escalate me', max_tokens: 4, temperature: 0, response_format: { type: 'json_object' }, metadata: { task: 'extract-json' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('x-attn-escalations'), '1');
    const after = await ledger();
    const small = after.by_model.find((m: any) => m.model === 'small');
    // The small tier generated 4 tokens for the 11-token prompt, failed the JSON check and was paid for.
    assert.deepEqual([small.requests - smallBefore.requests, small.prompt_tokens - smallBefore.prompt_tokens, small.completion_tokens - smallBefore.completion_tokens], [1, 11, 4]);
    assert.equal(small.cost - smallBefore.cost, 11 * 1 + 4 * 2);
    assert.equal((await promptTokens('small')) - metricBefore, 11);
    // The task's cost is both attempts (small: 11·1 + 4·2; large: 11·10 + 4·20), and it is still one request.
    const task = after.by_task.find((t: any) => t.task === 'extract-json');
    assert.deepEqual([task.requests, task.cost], [1, 19 + 190]);
    assert.equal(after.requests - before.requests, 1);
    assert.deepEqual(r.json.usage, { prompt_tokens: 11, completion_tokens: 4, total_tokens: 15 }, 'usage is the answer\'s own');
  });

  it('feedback marks requests; the report gives cost per successful task', async () => {
    const a = await postJson(`${s.url}/v1/completions`, { model: 'small', prompt: 'abc', max_tokens: 2, temperature: 1 }, { 'x-attn-task': 'summary' });
    const b = await postJson(`${s.url}/v1/completions`, { model: 'small', prompt: 'abd', max_tokens: 2, temperature: 1, metadata: { task: 'summary' } });
    assert.equal(a.headers.get('x-request-id'), a.json.id);
    assert.equal((await postJson(`${s.url}/v1/feedback`, { id: a.json.id, success: true })).status, 200);
    assert.equal((await postJson(`${s.url}/v1/feedback`, { id: b.json.id, success: false })).status, 200);
    const unknown = await postJson(`${s.url}/v1/feedback`, { id: 'cmpl-nope', success: true });
    assert.equal(unknown.status, 404);
    const report = (await (await fetch(`${s.url}/v1/ledger`)).json()) as any;
    const summary = report.by_task.find((t: any) => t.task === 'summary');
    assert.deepEqual([summary.requests, summary.successes, summary.failures, summary.cost], [2, 1, 1, 14]);
    assert.equal(summary.cost_per_successful_task, 14);
    assert.match(await metricsText(s), /attn_feedback_total\{task="summary",outcome="success"\} 1/);
 // Asynchronously: the server runs in this process.
    const cli = await run([MAIN, 'serve', '--report', '--url', s.url]);
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /^summary\s+2\s+1\s+1\s+14\.000000\s+7\.000000\s+14\.000000$/m);
  });

  it('a stream answers x-attn-model, x-attn-cache and x-attn-escalations too', async () => {
    const stream = async (path: string, body: object) => {
      const r = await fetch(`${s.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ ...body, stream: true }) });
      const text = await r.text();
      assert.equal(r.status, 200, text);
      assert.match(r.headers.get('content-type')!, /^text\/event-stream/);
      assert.ok(text.endsWith('data: [DONE]\n\n'));
      return [r.headers.get('x-attn-model'), r.headers.get('x-attn-cache'), r.headers.get('x-attn-escalations')];
    };
    const body = { model: 'small', prompt: 'The streamed question', max_tokens: 5, temperature: 0 };
    assert.deepEqual(await stream('/v1/completions', body), ['small', 'miss', '0']);
    assert.deepEqual(await stream('/v1/completions', body), ['small', 'hit', '0'], 'the second is served from the cache');
    // "auto" with a json_object that fails its check: a stream stays on its first tier.
    const chat = { model: 'auto', messages: [{ role: 'user', content: 'JSON in a stream' }], max_tokens: 5, temperature: 0.5, response_format: { type: 'json_object' } };
    assert.deepEqual(await stream('/v1/chat/completions', chat), ['small', 'miss', '0']);
  });

  it('exposes Prometheus metrics and echoes the W3C trace', async () => {
    const trace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const r = await fetch(`${s.url}/v1/models`, { headers: { traceparent: `00-${trace}-00f067aa0ba902b7-01` } });
    assert.match(r.headers.get('traceparent')!, new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`));
    assert.match(r.headers.get('x-request-id')!, /^req-/);
    const m = await metricsText(s);
    for (const name of ['attn_requests_total', 'attn_time_to_first_token_seconds_bucket', 'attn_request_duration_seconds_bucket', 'attn_prompt_tokens_total', 'attn_completion_tokens_total', 'attn_cost_total', 'attn_queue_depth', 'attn_running_batch_size', 'attn_step_seconds_bucket', 'attn_step_sequences_total', 'process_resident_memory_bytes']) {
      assert.ok(m.includes(name), name);
    }
    // Earlier tests in this suite generated: every step served at least one sequence, and each counted.
    const value = (re: RegExp) => Number(re.exec(m)?.[1] ?? NaN);
    const steps = value(/attn_step_seconds_count\{model="small"\} (\d+)/);
    const served = value(/attn_step_sequences_total\{model="small"\} (\d+)/);
    assert.ok(steps > 0 && served >= steps, `steps ${steps}, sequences ${served}`);
    const health = (await (await fetch(`${s.url}/health`)).json()) as any;
    assert.equal(health.status, 'ok');
  });
});

describe('serve: logs', () => {
  for (const logPrompts of [false, true]) {
    it(`one JSON line per request with its trace; prompts ${logPrompts ? 'included with --log-prompts' : 'left out by default'}`, async () => {
      const lines: string[] = [];
      const logger = createLogger({ logPrompts, destination: { write: (l: string) => void lines.push(l) } });
      const s = await startTiny({ logger, logPrompts, cache: null });
      try {
        const trace = '0af7651916cd43dd8448eb211c80319c';
        await postJson(`${s.url}/v1/completions`, { model: 'tiny', prompt: 'secret words', max_tokens: 2 }, { traceparent: `00-${trace}-b7ad6b7169203331-01`, 'x-attn-task': 'qa' });
      } finally {
        await s.close();
      }
      const line = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'request')!;
      assert.equal(line.trace_id, '0af7651916cd43dd8448eb211c80319c');
      assert.equal(line.parent_span_id, 'b7ad6b7169203331');
      assert.equal(line.task, 'qa');
      assert.equal(line.completion_tokens, 2);
      assert.equal(line.prompt, logPrompts ? 'secret words' : undefined);
      assert.equal(lines.some((l) => l.includes('secret words')), logPrompts);
    });
  }
});

describe('attn serve (CLI)', () => {
  it('serves a model directory on a free port and stops on SIGTERM', async () => {
    const { dir, cleanup } = tinyModelDir();
    try {
      const child = spawn(process.execPath, [MAIN, 'serve', '--model', `mini=${dir}`, '--port', '0', '--log-level', 'silent', '--backend', 'js'], { stdio: ['ignore', 'pipe', 'pipe'] });
      const line = await new Promise<string>((ok) => createInterface({ input: child.stdout! }).once('line', ok));
      const url = /(http:\/\/\S+)\/v1/.exec(line)![1]!;
      const r = await postJson(`${url}/v1/completions`, { model: 'mini', prompt: 'Hi', max_tokens: 3 });
      assert.equal(r.status, 200);
      assert.equal(r.json.usage.completion_tokens, 3);
      const exited = new Promise<number | null>((ok) => child.once('exit', ok));
      child.kill('SIGTERM');
      assert.equal(await exited, 0);
    } finally {
      cleanup();
    }
  });

  it('says what is missing in one line', async () => {
    const r = await run([MAIN, 'serve']);
    assert.equal(r.status, 1);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /needs at least one --model/);
  });
});
