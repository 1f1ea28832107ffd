/**
 * Traces: a request's spans reach a real OTLP/HTTP receiver (a local HTTP
 * server decoding the JSON export): the request span continues the caller's
 * W3C trace and is the span the response's traceparent names, with a child
 * per stage and token counts and cost as attributes. An unreachable
 * endpoint is logged once and serving goes on. Stage durations are metrics.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setBackend } from '../src/backend/index.js';
import { createLogger } from '../src/serve/logging.js';
import type { AttnServer } from '../src/serve/server.js';
import { attr, receiver } from './otlp_receiver.js';
import { postJson, startTiny, until } from './serve_fixture.js';

const exportFailures = async (s: AttnServer): Promise<number> => (await s.context.ops!.metrics.traceExportFailures.get()).values[0]?.value ?? 0;

async function waitFor(cond: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('traces', () => {
  it('exports the request span under the caller\'s trace, with a span per stage', async () => {
    setBackend('js');
    const rx = await receiver();
    const server = await startTiny({ configInput: { tracing: { otlp_endpoint: rx.url, service_name: 'attn-test' }, guardrails: {}, prices: { tiny: { input_per_million: 1000, output_per_million: 2000 } } } });
    const callerTrace = '4bf92f3577b34da6a3ce929d0e0e4736';
    const callerSpan = '00f067aa0ba902b7';
    let responseParent = '';
    try {
      const r = await postJson(`${server.url}/v1/completions`, { model: 'tiny', prompt: 'Hello there', max_tokens: 4, metadata: { task: 'greeting' } }, { traceparent: `00-${callerTrace}-${callerSpan}-01` });
      assert.equal(r.status, 200);
      responseParent = r.headers.get('traceparent')!;
    } finally {
      await server.close(); // flushes the span processor
      rx.server.close();
    }
    assert.ok(rx.contentTypes.every((c) => c.startsWith('application/json')), rx.contentTypes.join());
    const root = rx.spans.find((s) => s.name === 'attn completions');
    assert.ok(root, `a request span among ${rx.spans.map((s) => s.name).join(', ')}`);
    assert.equal(root.traceId, callerTrace);
    assert.equal(root.parentSpanId, callerSpan);
    assert.equal(`00-${root.traceId}-${root.spanId}-01`, responseParent, 'the span the response header names');
    assert.equal(attr(root, 'attn.task'), 'greeting');
    assert.equal(Number(attr(root, 'attn.completion_tokens')), 4);
    assert.equal(Number(attr(root, 'attn.prompt_tokens')), 11);
    assert.ok(Math.abs(Number(attr(root, 'attn.cost')) - (11 * 1000 + 4 * 2000) / 1e6) < 1e-12);
    const children = rx.spans.filter((s) => s.parentSpanId === root.spanId);
    assert.deepEqual(children.map((s) => s.name).sort(), ['decode', 'guardrails', 'guardrails_output', 'prefill', 'queue']);
    for (const c of children) {
      assert.equal(c.traceId, callerTrace);
      assert.ok(BigInt(c.startTimeUnixNano) + 2_000_000n >= BigInt(root.startTimeUnixNano) && BigInt(c.endTimeUnixNano) <= BigInt(root.endTimeUnixNano) + 2_000_000n, `${c.name} inside the request`);
    }
    const byName = (n: string) => children.find((c) => c.name === n)!;
    // The SDK maps performance.now() to wall time per span with Date.now()'s millisecond grain: allow 2 ms.
    const ms2 = 2_000_000n;
    assert.ok(BigInt(byName('queue').endTimeUnixNano) <= BigInt(byName('prefill').startTimeUnixNano) + ms2);
    assert.ok(BigInt(byName('prefill').endTimeUnixNano) <= BigInt(byName('decode').startTimeUnixNano) + ms2);
    assert.equal(Number(attr(byName('decode'), 'attn.completion_tokens')), 4);
  });

  it('an unreachable endpoint is logged once; requests are served; stage metrics by task type', async () => {
    setBackend('js');
    const rx = await receiver();
    const dead = rx.url;
    await new Promise<void>((ok) => rx.server.close(() => ok())); // nothing listens there now
    const lines: string[] = [];
    const logger = createLogger({ level: 'info', destination: { write: (s: string) => void lines.push(s) } as never });
    const server = await startTiny({ logger, configInput: { tracing: { otlp_endpoint: dead } } });
    try {
      const ask = async (i: number) => {
        const r = await postJson(`${server.url}/v1/completions`, { model: 'tiny', prompt: `Hi ${i}`, max_tokens: 2 }, { 'x-attn-task': 'chitchat' });
        assert.equal(r.status, 200);
      };
      for (let i = 0; i < 3; i++) await ask(i);
      // The exporter retries for a few seconds before it gives a batch up.
      await until(() => lines.some((l) => l.includes('cannot export traces')), 15_000, 'the export failure to be logged');
      for (let i = 3; i < 5; i++) await ask(i);
      await waitFor(async () => (await exportFailures(server)) >= 2, 15_000, 'a second failed export');
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      for (const stage of ['queue', 'prefill', 'decode']) assert.match(metrics, new RegExp(`attn_stage_seconds_count\\{stage="${stage}",task="chitchat"\\} 5`));
      assert.match(metrics, /attn_trace_export_failures_total [1-9]/);
    } finally {
      await server.close();
    }
    const warned = lines.filter((l) => l.includes('cannot export traces'));
    assert.equal(warned.length, 1, lines.join(''));
    assert.match(warned[0]!, new RegExp(dead.replace(/[/.]/g, '\\$&')));
  });
});
