/**
 * attn evals: the scorers (the JSON-schema validator checked against ajv),
 * the judge's score parsing, the suite's errors, and `attn evals run` end to
 * end against a scripted OpenAI-compatible server, with a judge (scripted,
 * and attn serve's own tiny model, whose unparsable grades must fail
 * cleanly), results.json, report.md and --compare.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Ajv } from 'ajv';
import { setBackend } from '../src/backend/index.js';
import { parseJudgeScore } from '../src/serve/evals/judge.js';
import { checkSchema, validateJson } from '../src/serve/evals/json_schema.js';
import { extractJson, lastNumber } from '../src/serve/evals/scorers.js';
import { parseSuite } from '../src/serve/evals/suite.js';
import { UserError } from '../src/util/errors.js';
import { startTiny, until } from './serve_fixture.js';

const CLI = join(process.cwd(), 'dist/src/cli/main.js');

describe('evals: scorers', () => {
  it('the JSON-schema validator agrees with ajv', () => {
    const ajv = new Ajv({ strict: false });
    const schema = {
      type: 'object',
      required: ['name', 'age', 'tags'],
      additionalProperties: false,
      properties: {
        name: { type: 'string', minLength: 2, pattern: '^[A-Z]' },
        age: { type: 'integer', minimum: 0, exclusiveMaximum: 150 },
        tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 2 },
        nick: { anyOf: [{ type: 'null' }, { type: 'string', maxLength: 3 }] },
        kind: { oneOf: [{ const: 'x' }, { type: 'number' }] },
      },
    };
    const values: unknown[] = [
      { name: 'Ann', age: 30, tags: ['a'] },
      { name: 'ann', age: 30, tags: [] },
      { name: 'A', age: 30, tags: [] },
      { name: 'Ann', age: 30.5, tags: [] },
      { name: 'Ann', age: 150, tags: [] },
      { name: 'Ann', age: 3, tags: ['a', 'b', 'a'] },
      { name: 'Ann', age: 3, tags: ['c'] },
      { name: 'Ann', age: 3 },
      { name: 'Ann', age: 3, tags: [], extra: 1 },
      { name: 'Ann', age: 3, tags: [], nick: null },
      { name: 'Ann', age: 3, tags: [], nick: 'long' },
      { name: 'Ann', age: 3, tags: [], kind: 'x' },
      { name: 'Ann', age: 3, tags: [], kind: 'y' },
      [],
      'Ann',
    ];
    const check = ajv.compile(schema);
    for (const v of values) assert.equal(validateJson(v, schema).length === 0, check(v), JSON.stringify(v));
  });

  it('refuses a schema keyword it cannot check, naming it', () => {
    assert.throws(() => checkSchema({ type: 'object', properties: { a: { $ref: '#/x' } } }), /#\/properties\/a: the keyword "\$ref" is not supported/);
    assert.throws(() => checkSchema({ type: 'text' }), /"text" is not a JSON type/);
  });

  it('finds JSON and numbers in answers', () => {
    assert.deepEqual(extractJson('Sure! ```json\n{"a": 1}\n```')?.value, { a: 1 });
    assert.deepEqual(extractJson('The answer is {"a": [1, 2]} as asked.')?.value, { a: [1, 2] });
    assert.equal(extractJson('no json here'), null);
    assert.equal(lastNumber('It costs -1,234.5 dollars'), -1234.5);
    assert.equal(lastNumber('first 3 then 2.5e3'), 2500);
    assert.equal(lastNumber('none'), null);
  });

  it('parses a judge\'s score in the shapes models write it', () => {
    const shapes: Array<[string, number | null]> = [
      ['The answer is right.\nScore: 8', 8],
      ['**Score:** 7/10', 7],
      ['Rating = 9 out of 10', 9],
      ['{"score": 6, "reason": "ok"}', 6],
      ['I would give it a 5/10.', 5],
      ['Score: 4. On reflection, Score: 6', 6],
      ['10', 10],
      ['It has 3 errors.', null],
      ['Score: 42', null],
      ['', null],
    ];
    for (const [reply, want] of shapes) assert.equal(parseJudgeScore(reply), want, reply);
  });

  it('a bad suite line is an error naming the file, line and field', () => {
    const bad: Array<[string, RegExp]> = [
      ['{"prompt": "x", "score": {"type": "exact"}}', /s\.jsonl:1: score\.expected: Required/],
      ['\n{"prompt": "x", "score": {"type": "regex", "pattern": "("}}', /s\.jsonl:2: score\.pattern: not a valid regular expression/],
      ['{"prompt": "x", "score": {"type": "json_schema", "schema": {"type": "object", "if": {}}}}', /score\.schema: #: the keyword "if" is not supported/],
      ['{"prompt": "x", "score": {"type": "bleu"}}', /s\.jsonl:1: score\.type: Invalid enum value/],
      ['{"score": {"type": "exact", "expected": "a"}}', /give either "prompt" or "messages"/],
      ['{"prompt": "x", "score": {"type": "numeric", "expected": 1}, "temprature": 0}', /Unrecognized key.*temprature/],
      ['{"prompt": "x" "score": 1}', /s\.jsonl:1: invalid JSON/],
      ['// only a comment', /no cases/],
    ];
    for (const [text, msg] of bad) assert.throws(() => parseSuite(text, 's.jsonl'), (e: Error) => e instanceof UserError && msg.test(e.message), `${text} → ${msg}`);
  });
});

/** An OpenAI-compatible server that answers from a table (by the last user message) and grades as a judge. */
async function scriptedServer(answers: Record<string, string>): Promise<{ url: string; server: Server; seen: string[] }> {
  const seen: string[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      const r = JSON.parse(body) as { model: string; messages: Array<{ role: string; content: string }> };
      seen.push(r.model);
      const last = r.messages[r.messages.length - 1]!.content;
      let text: string;
      if (r.model === 'judge') text = last.includes('Paris') ? 'Correct and complete.\nScore: 9' : 'Wrong city. Score: 2';
      else text = answers[last] ?? 'I do not know';
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ id: 'x', object: 'chat.completion', choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }], usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 } }));
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, seen };
}

const SUITE = [
  { id: 'exact', task: 'qa', prompt: 'Say yes', score: { type: 'exact', expected: 'yes', ignore_case: true } },
  { id: 'regex', task: 'qa', prompt: 'A date?', score: { type: 'regex', pattern: '^\\d{4}-\\d{2}-\\d{2}$' } },
  { id: 'json', task: 'extract', prompt: 'JSON please', score: { type: 'json_schema', schema: { type: 'object', required: ['city'], properties: { city: { type: 'string' } } } } },
  { id: 'num', task: 'math', prompt: 'Pi?', score: { type: 'numeric', expected: 3.14159, tolerance: 0.01 } },
  { id: 'judged', task: 'qa', prompt: 'Capital of France?', score: { type: 'judge', rubric: 'Names the right city.' } },
];

/** The CLI in a child process, asynchronously: the scripted servers answer from this one. */
function evals(args: string[]): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, 'evals', ...args], { encoding: 'utf8', timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ status: err ? ((err as { code?: number }).code ?? null) : 0, stdout, stderr });
    });
  });
}

describe('attn evals run', () => {
  it('scores a suite, writes results.json and report.md, and compares with a previous run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-evals-'));
    const first = await scriptedServer({ 'Say yes': ' YES ', 'A date?': 'on 2024-05-17', 'JSON please': '{"city": "Paris"}', 'Pi?': 'about 3.2', 'Capital of France?': 'Paris' });
    const second = await scriptedServer({ 'Say yes': 'no', 'A date?': '2024-05-17', 'JSON please': '```json\n{"city": 7}\n```', 'Pi?': 'It is 3.1416.', 'Capital of France?': 'Lyon' });
    try {
      const suite = join(dir, 'suite.jsonl');
      writeFileSync(suite, `${SUITE.map((c) => JSON.stringify(c)).join('\n')}\n`);
      const a = await evals(['run', '--suite', suite, '--url', first.url, '--model', 'm1', '--judge-url', `${first.url}/v1`, '--judge-model', 'judge', '--out', join(dir, 'a'), '--json']);
      assert.equal(a.status, 0, a.stderr);
      assert.deepEqual(JSON.parse(a.stdout), { cases: 5, passed: 3, pass_rate: 0.6, mean_score: (2 + 0.9) / 5, errors: 0 });
      const run = JSON.parse(readFileSync(join(dir, 'a', 'results.json'), 'utf8'));
      const byId = Object.fromEntries(run.cases.map((c: { id: string }) => [c.id, c]));
      assert.equal(byId.exact.pass, true);
      assert.equal(byId.regex.pass, false, 'the regex is anchored');
      assert.equal(byId.json.pass, true);
      assert.equal(byId.num.pass, false);
      assert.equal(byId.num.detail, '3.2 vs 3.14159 ± 0.01');
      assert.equal(byId.judged.pass, true);
      assert.equal(byId.judged.detail, 'judge 9/10');
      assert.deepEqual(run.by_task.qa, { cases: 3, passed: 2, pass_rate: 2 / 3, mean_score: (1 + 0 + 0.9) / 3 });
      assert.ok(first.seen.includes('judge') && first.seen.includes('m1'));

      const b = await evals(['run', '--suite', suite, '--url', second.url, '--model', 'm2', '--judge-url', first.url, '--judge-model', 'judge', '--out', join(dir, 'b'), '--compare', join(dir, 'a', 'results.json'), '--min-pass-rate', '0.5']);
      assert.equal(b.status, 1, 'below --min-pass-rate');
      assert.match(b.stderr, /pass rate 0\.400 is below --min-pass-rate 0\.5/);
      assert.match(b.stdout, /2\/5 passed/);
      assert.match(b.stdout, /pass rate -20\.0 pts, 2 fixed, 3 regressed \(exact, json, judged\)/);
      const md = readFileSync(join(dir, 'b', 'report.md'), 'utf8');
      assert.match(md, /# Evaluation: m2/);
      assert.match(md, /- regressed \(3\): exact, json, judged/);
      assert.match(md, /\| json \| extract \| json_schema \| \*\*fail\*\* \| \$\.city: expected string, got number \|/);
    } finally {
      first.server.close();
      second.server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('attn serve can be the judge; a grade without a score fails the case with the reply as detail', async () => {
    setBackend('js');
    const judge = await startTiny({ names: ['tinyjudge'], blockSize: 512 });
    const target = await scriptedServer({ 'Capital of France?': 'Paris' });
    const dir = mkdtempSync(join(tmpdir(), 'attn-evals-'));
    try {
      const suite = join(dir, 'suite.jsonl');
      writeFileSync(suite, JSON.stringify(SUITE[4]));
      const r = await evals(['run', '--suite', suite, '--url', target.url, '--model', 'm', '--judge-url', judge.url, '--judge-model', 'tinyjudge', '--max-tokens', '8', '--out', dir]);
      assert.equal(r.status, 0, r.stderr);
      const c = JSON.parse(readFileSync(join(dir, 'results.json'), 'utf8')).cases[0];
      const score = parseJudgeScore(c.detail);
      // A random tiny model rarely writes a grade; whatever it wrote, the case is scored from it and nothing crashes.
      if (c.pass) assert.ok(score === null && /^judge \d+\/10$/.test(c.detail));
      else assert.match(c.detail, /^judge (gave no score|\d+\/10)/);
    } finally {
      await judge.close();
      target.server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('bad input: a judge case without a judge, an unreachable server, a bad --compare', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'attn-evals-'));
    try {
      const suite = join(dir, 'suite.jsonl');
      writeFileSync(suite, SUITE.map((c) => JSON.stringify(c)).join('\n'));
      const noJudge = await evals(['run', '--suite', suite, '--url', 'http://127.0.0.1:9', '--model', 'm']);
      assert.equal(noJudge.status, 1);
      assert.match(noJudge.stderr, /^attn: error: .*1 case\(s\) are scored by a judge: give --judge-url and --judge-model/);
      writeFileSync(suite, JSON.stringify(SUITE[0]));
      const down = await evals(['run', '--suite', suite, '--url', 'http://127.0.0.1:9', '--model', 'm']);
      assert.equal(down.status, 1);
      assert.match(down.stderr, /attn: error: every request failed/);
      writeFileSync(join(dir, 'prev.json'), '{"x": 1}');
      const cmp = await evals(['run', '--suite', suite, '--url', 'http://127.0.0.1:9', '--model', 'm', '--compare', join(dir, 'prev.json')]);
      assert.match(cmp.stderr, /--compare .*prev\.json: not a results\.json of attn evals run/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('live traffic judged in the server', () => {
  it('a fraction of answers is judged after the response and feeds cost per successful task, by task type', async () => {
    setBackend('js');
    const judge = await scriptedServer({});
    const server = await startTiny({ configInput: { prices: { tiny: { input_per_million: 1_000_000, output_per_million: 0 } }, judge: { url: judge.url, model: 'judge', fraction: 1, pass_score: 0.7 } } });
    try {
      const ask = async (prompt: string, task: string) => {
        const r = await fetch(`${server.url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-attn-task': task }, body: JSON.stringify({ model: 'tiny', prompt, max_tokens: 2 }) });
        assert.equal(r.status, 200);
        await r.text();
      };
      await ask('Is Paris big?', 'geo'); // the scripted judge passes answers to questions naming Paris
      await ask('Paris or Rome?', 'geo');
      await ask('Lyon?', 'geo');
      await ask('Hi', 'chat');
      await until(() => judge.seen.filter((m) => m === 'judge').length === 4, 10_000, 'four judgements');
      await server.context.ops!.judge!.idle();
      const report = server.context.ledger.report();
      const geo = report.by_task.find((t) => t.task === 'geo')!;
      assert.deepEqual([geo.requests, geo.successes, geo.failures], [3, 2, 1]);
      assert.equal(geo.cost, 'Is Paris big?'.length + 'Paris or Rome?'.length + 'Lyon?'.length, 'one unit per prompt token (char tokenizer)');
      assert.equal(geo.cost_per_successful_task, geo.cost / 2);
      const chatTask = report.by_task.find((t) => t.task === 'chat')!;
      assert.deepEqual([chatTask.successes, chatTask.failures, chatTask.cost_per_successful_task], [0, 1, null]);
      const metrics = await (await fetch(`${server.url}/metrics`)).text();
      assert.match(metrics, /attn_judged_total\{task="geo",verdict="pass"\} 2/);
      assert.match(metrics, /attn_judged_total\{task="chat",verdict="fail"\} 1/);
    } finally {
      await server.close();
      judge.server.close();
    }
  });
});
