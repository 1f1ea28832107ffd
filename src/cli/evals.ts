import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Command } from 'commander';
import { writeFileAtomic } from '../io/atomic.js';
import { scoreGeneratedPII } from '../serve/guardrails/pii_eval.js';
import { compareRuns, markdownReport, parseRun } from '../serve/evals/report.js';
import { runSuite } from '../serve/evals/run.js';
import { loadSuite } from '../serve/evals/suite.js';
import { UserError } from '../util/errors.js';
import { int, num, seed } from './flags.js';

/** `attn evals run` and `attn evals pii`: quality measured against a suite, and the PII detector's recall and false alarms. */

interface RunCliOptions {
  suite: string;
  url: string;
  model: string;
  apiKey?: string;
  judgeUrl?: string;
  judgeModel?: string;
  judgeApiKey?: string;
  rubric?: string;
  out?: string;
  compare?: string;
  concurrency: number;
  maxTokens?: number;
  timeout: number;
  minPassRate?: number;
  json?: boolean;
}

async function runEvals(o: RunCliOptions): Promise<void> {
  if ((o.judgeUrl === undefined) !== (o.judgeModel === undefined)) throw new UserError('--judge-url and --judge-model go together');
  try {
    new URL(o.url);
  } catch {
    throw new UserError(`--url ${o.url}: not a URL`);
  }
  const cases = loadSuite(o.suite);
  if (cases.some((c) => c.score.type === 'judge') && !o.judgeUrl) throw new UserError(`${o.suite}: ${cases.filter((c) => c.score.type === 'judge').length} case(s) are scored by a judge: give --judge-url and --judge-model (any OpenAI-compatible server, attn serve included)`);
  const previous = o.compare ? parseRun(readText(o.compare, '--compare'), o.compare) : undefined;
  const run = await runSuite(cases, {
    suite: o.suite,
    target: { url: o.url, model: o.model, apiKey: o.apiKey ?? process.env.OPENAI_API_KEY },
    judge: o.judgeUrl ? { url: o.judgeUrl, model: o.judgeModel!, apiKey: o.judgeApiKey, ...(o.rubric ? { rubric: o.rubric } : {}) } : null,
    concurrency: o.concurrency,
    timeoutMs: o.timeout * 1000,
    ...(o.maxTokens ? { maxTokens: o.maxTokens } : {}),
    onCase: (r, done, total) => {
      if (!o.json) process.stderr.write(`\r${done}/${total} ${r.pass ? 'pass' : 'FAIL'} ${r.id}`.padEnd(60));
    },
  });
  if (!o.json) process.stderr.write('\n');
  const cmp = previous ? compareRuns(previous, run) : undefined;
  if (run.summary.errors === run.summary.cases) throw new UserError(`every request failed; the first: ${run.cases[0]!.error}`);
  if (o.out) {
    mkdirSync(o.out, { recursive: true });
    writeFileAtomic(join(o.out, 'results.json'), `${JSON.stringify({ ...run, ...(cmp ? { comparison: cmp } : {}) }, null, 2)}\n`);
    writeFileAtomic(join(o.out, 'report.md'), markdownReport(run, cmp));
  }
  const s = run.summary;
  if (o.json) process.stdout.write(`${JSON.stringify({ cases: s.cases, passed: s.passed, pass_rate: s.pass_rate, mean_score: s.mean_score, errors: s.errors, ...(cmp ? { pass_rate_delta: cmp.pass_rate_delta, fixed: cmp.fixed.length, regressed: cmp.regressed.length } : {}) })}\n`);
  else {
    process.stdout.write(`${s.passed}/${s.cases} passed (${(100 * s.pass_rate).toFixed(1)} %), mean score ${s.mean_score.toFixed(3)}, ${s.errors} errors${o.out ? `; ${join(o.out, 'results.json')} and report.md written` : ''}\n`);
    if (cmp) process.stdout.write(`vs ${o.compare}: pass rate ${cmp.pass_rate_delta >= 0 ? '+' : ''}${(100 * cmp.pass_rate_delta).toFixed(1)} pts, ${cmp.fixed.length} fixed, ${cmp.regressed.length} regressed${cmp.regressed.length ? ` (${cmp.regressed.join(', ')})` : ''}\n`);
  }
  if (o.minPassRate !== undefined && s.pass_rate < o.minPassRate) {
    process.stderr.write(`attn: error: pass rate ${s.pass_rate.toFixed(3)} is below --min-pass-rate ${o.minPassRate}\n`);
    process.exitCode = 1;
  }
}

function readText(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new UserError(`${flag} ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

function runPii(o: { n: number; seed: number; json?: boolean }): void {
  if (o.n < 10) throw new UserError('--n must be at least 10');
  const s = scoreGeneratedPII(o.n, o.seed);
  if (o.json) {
    process.stdout.write(`${JSON.stringify({ texts: s.texts, planted: s.planted, found: s.found, recall: s.recall, negatives: s.negatives, false_alarms: s.falseAlarms, false_alarm_rate: s.falseAlarmRate })}\n`);
    return;
  }
  process.stdout.write(`${s.texts} generated texts (seed ${o.seed}): recall ${(100 * s.recall).toFixed(2)} % (${s.found}/${s.planted} planted items), false alarms ${(100 * s.falseAlarmRate).toFixed(2)} % (${s.falseAlarms}/${s.negatives} texts without personal data)\n`);
  for (const m of s.misses) process.stdout.write(`  missed ${m.kind} ${JSON.stringify(m.value)} in ${JSON.stringify(m.text)}\n`);
  for (const a of s.alarms) process.stdout.write(`  false alarm ${a.detected.map((d) => `${d.kind} ${JSON.stringify(d.text)}`).join(', ')} in ${JSON.stringify(a.text)}\n`);
}

export function evalsCommand(): Command {
  const evals = new Command('evals').description('evaluate a served model on a suite of cases (exact, regex, JSON schema, numeric, judge), and measure the guardrails');
  evals
    .command('run')
    .description('send every case of a JSONL suite to an OpenAI-compatible server, score the answers, write results.json and report.md, compare with a previous run (docs/evals.md)')
    .requiredOption('--suite <file.jsonl>', 'the cases, one JSON object per line')
    .requiredOption('--url <url>', 'the server under test (base URL, e.g. http://127.0.0.1:8000)')
    .requiredOption('--model <name>', 'the model to ask')
    .option('--api-key <key>', 'bearer key for --url (default: OPENAI_API_KEY)')
    .option('--judge-url <url>', 'an OpenAI-compatible server whose model grades "judge" cases (attn serve works)')
    .option('--judge-model <name>', 'the judge model')
    .option('--judge-api-key <key>', 'bearer key for --judge-url')
    .option('--rubric <text>', 'default rubric for judge cases without their own')
    .option('--out <dir>', 'write DIR/results.json and DIR/report.md')
    .option('--compare <results.json>', 'a previous run: report the change in pass rate and the cases fixed or regressed')
    .option('--concurrency <n>', 'requests at once', int, 4)
    .option('--max-tokens <n>', 'max_tokens for cases without their own', int)
    .option('--timeout <s>', 'seconds per request', int, 120)
    .option('--min-pass-rate <x>', 'exit non-zero when the pass rate is below x (0–1)', num)
    .option('--json', 'print the summary as one JSON line')
    .action((o: RunCliOptions) => runEvals(o));
  evals
    .command('pii')
    .description('recall and false alarms of the PII redaction guardrail on a generated set of texts with and without personal data')
    .option('--n <n>', 'texts to generate', int, 1000)
    .option('--seed <n>', 'generator seed', seed, 1)
    .option('--json', 'one JSON line')
    .action((o: { n: number; seed: number; json?: boolean }) => runPii(o));
  return evals;
}
