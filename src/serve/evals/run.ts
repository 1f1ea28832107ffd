import { chat, type ChatTarget } from './openai_client.js';
import { scoreAnswer } from './scorers.js';
import type { EvalCase } from './suite.js';

/**
 * Running a suite against a model: each case's prompt goes to the model
 * (`concurrency` at a time), its answer is scored, and the results add up
 * to a summary by scorer and by task type. A case whose request fails is
 * counted as failed with the error as its detail, so one bad case does not
 * lose the run.
 */

export interface CaseResult {
  id: string;
  task: string;
  scorer: string;
  pass: boolean;
  score: number;
  detail: string;
  answer: string;
  ms: number;
  prompt_tokens?: number;
  completion_tokens?: number;
  error?: string;
}

interface Tally {
  cases: number;
  passed: number;
  pass_rate: number;
  mean_score: number;
}

export interface EvalRun {
  suite: string;
  url: string;
  model: string;
  judge?: { url: string; model: string };
  started: string;
  seconds: number;
  summary: Tally & { errors: number; mean_ms: number; prompt_tokens: number; completion_tokens: number };
  by_scorer: Record<string, Tally>;
  by_task: Record<string, Tally>;
  cases: CaseResult[];
}

export interface RunOptions {
  suite: string;
  target: ChatTarget;
  judge?: (ChatTarget & { rubric?: string }) | null;
  concurrency?: number;
  maxTokens?: number;
  timeoutMs?: number;
  onCase?: (r: CaseResult, done: number, total: number) => void;
}

function messagesOf(c: EvalCase): Array<{ role: string; content: string }> {
  const system = c.system !== undefined ? [{ role: 'system', content: c.system }] : [];
  return [...system, ...(c.messages ?? [{ role: 'user', content: c.prompt! }])];
}

function tally(rs: readonly CaseResult[]): Tally {
  const passed = rs.filter((r) => r.pass).length;
  return { cases: rs.length, passed, pass_rate: rs.length ? passed / rs.length : 0, mean_score: rs.length ? rs.reduce((s, r) => s + r.score, 0) / rs.length : 0 };
}

function groupBy(rs: readonly CaseResult[], key: (r: CaseResult) => string): Record<string, Tally> {
  const groups = new Map<string, CaseResult[]>();
  for (const r of rs) groups.set(key(r), [...(groups.get(key(r)) ?? []), r]);
  return Object.fromEntries([...groups.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, tally(v)]));
}

async function runCase(c: EvalCase, o: RunOptions): Promise<CaseResult> {
  const base = { id: c.id, task: c.task ?? 'default', scorer: c.score.type };
  const started = performance.now();
  try {
    const reply = await chat(o.target, messagesOf(c), {
      temperature: c.temperature ?? 0,
      ...(c.max_tokens ?? o.maxTokens ? { maxTokens: c.max_tokens ?? o.maxTokens } : {}),
      ...(o.timeoutMs ? { timeoutMs: o.timeoutMs } : {}),
      extra: { metadata: { task: c.task ?? 'eval' } },
    });
    const s = await scoreAnswer(c, reply.text, o.judge ?? null);
    return { ...base, ...s, answer: reply.text, ms: reply.ms, ...(reply.usage ? { prompt_tokens: reply.usage.prompt_tokens, completion_tokens: reply.usage.completion_tokens } : {}) };
  } catch (e) {
    const msg = (e as Error).message;
    return { ...base, pass: false, score: 0, detail: `error: ${msg}`, answer: '', ms: performance.now() - started, error: msg };
  }
}

export async function runSuite(cases: readonly EvalCase[], o: RunOptions): Promise<EvalRun> {
  const started = new Date();
  const t0 = performance.now();
  const results: CaseResult[] = new Array(cases.length);
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < cases.length) {
      const i = next++;
      results[i] = await runCase(cases[i]!, o);
      o.onCase?.(results[i]!, ++done, cases.length);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(o.concurrency ?? 4, cases.length)) }, worker));
  const ok = results.filter((r) => !r.error);
  return {
    suite: o.suite,
    url: o.target.url,
    model: o.target.model,
    ...(o.judge ? { judge: { url: o.judge.url, model: o.judge.model } } : {}),
    started: started.toISOString(),
    seconds: (performance.now() - t0) / 1000,
    summary: {
      ...tally(results),
      errors: results.length - ok.length,
      mean_ms: ok.length ? ok.reduce((s, r) => s + r.ms, 0) / ok.length : 0,
      prompt_tokens: results.reduce((s, r) => s + (r.prompt_tokens ?? 0), 0),
      completion_tokens: results.reduce((s, r) => s + (r.completion_tokens ?? 0), 0),
    },
    by_scorer: groupBy(results, (r) => r.scorer),
    by_task: groupBy(results, (r) => r.task),
    cases: results,
  };
}
