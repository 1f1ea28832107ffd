import { UserError } from '../../util/errors.js';
import type { EvalRun } from './run.js';

/**
 * A run as Markdown, and two runs compared: the pass rate's change overall,
 * by scorer and by task, and the cases that changed (fixed, regressed),
 * matched by case id.
 */

export interface Comparison {
  previous: { started: string; model: string; pass_rate: number };
  pass_rate_delta: number;
  mean_score_delta: number;
  fixed: string[];
  regressed: string[];
  /** Ids in one run only (the suite changed). */
  added: string[];
  removed: string[];
}

export function compareRuns(prev: EvalRun, cur: EvalRun): Comparison {
  const before = new Map(prev.cases.map((c) => [c.id, c]));
  const now = new Map(cur.cases.map((c) => [c.id, c]));
  const fixed: string[] = [];
  const regressed: string[] = [];
  for (const [id, c] of now) {
    const b = before.get(id);
    if (!b) continue;
    if (c.pass && !b.pass) fixed.push(id);
    if (!c.pass && b.pass) regressed.push(id);
  }
  return {
    previous: { started: prev.started, model: prev.model, pass_rate: prev.summary.pass_rate },
    pass_rate_delta: cur.summary.pass_rate - prev.summary.pass_rate,
    mean_score_delta: cur.summary.mean_score - prev.summary.mean_score,
    fixed,
    regressed,
    added: [...now.keys()].filter((id) => !before.has(id)),
    removed: [...before.keys()].filter((id) => !now.has(id)),
  };
}

/** A previous results.json, checked enough to compare with. */
export function parseRun(text: string, source: string): EvalRun {
  let j: unknown;
  try {
    j = JSON.parse(text);
  } catch (e) {
    throw new UserError(`--compare ${source}: invalid JSON: ${(e as Error).message}`);
  }
  const r = j as Partial<EvalRun>;
  if (!r || !Array.isArray(r.cases) || typeof r.summary?.pass_rate !== 'number') throw new UserError(`--compare ${source}: not a results.json of attn evals run (no cases or summary)`);
  return r as EvalRun;
}

const pct = (x: number): string => `${(100 * x).toFixed(1)} %`;
const signed = (x: number): string => `${x >= 0 ? '+' : ''}${(100 * x).toFixed(1)} pts`;
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ').slice(0, 100);

export function markdownReport(run: EvalRun, cmp?: Comparison): string {
  const lines = [
    `# Evaluation: ${run.model}`,
    '',
    `Suite \`${run.suite}\` against ${run.url} (model \`${run.model}\`)${run.judge ? `, judged by \`${run.judge.model}\` at ${run.judge.url}` : ''}, ${run.started}, ${run.seconds.toFixed(1)} s.`,
    '',
    `**${run.summary.passed} / ${run.summary.cases} passed (${pct(run.summary.pass_rate)})**, mean score ${run.summary.mean_score.toFixed(3)}, ${run.summary.errors} request errors, mean latency ${run.summary.mean_ms.toFixed(0)} ms, ${run.summary.prompt_tokens} prompt + ${run.summary.completion_tokens} completion tokens.`,
    '',
  ];
  if (cmp) {
    lines.push(
      `## Compared with the run of ${cmp.previous.started} (\`${cmp.previous.model}\`, ${pct(cmp.previous.pass_rate)})`,
      '',
      `Pass rate ${signed(cmp.pass_rate_delta)}, mean score ${cmp.mean_score_delta >= 0 ? '+' : ''}${cmp.mean_score_delta.toFixed(3)}.`,
      '',
      `- fixed (${cmp.fixed.length}): ${cmp.fixed.join(', ') || '—'}`,
      `- regressed (${cmp.regressed.length}): ${cmp.regressed.join(', ') || '—'}`,
      ...(cmp.added.length || cmp.removed.length ? [`- new cases: ${cmp.added.join(', ') || '—'}; gone: ${cmp.removed.join(', ') || '—'}`] : []),
      '',
    );
  }
  const table = (title: string, rows: Record<string, { cases: number; passed: number; pass_rate: number; mean_score: number }>) => [
    `## By ${title}`,
    '',
    `| ${title} | cases | passed | pass rate | mean score |`,
    '|---|---:|---:|---:|---:|',
    ...Object.entries(rows).map(([k, t]) => `| ${cell(k)} | ${t.cases} | ${t.passed} | ${pct(t.pass_rate)} | ${t.mean_score.toFixed(3)} |`),
    '',
  ];
  lines.push(...table('scorer', run.by_scorer), ...table('task', run.by_task));
  lines.push('## Cases', '', '| case | task | scorer | result | detail | answer |', '|---|---|---|---|---|---|');
  for (const c of run.cases) lines.push(`| ${cell(c.id)} | ${cell(c.task)} | ${c.scorer} | ${c.pass ? 'pass' : '**fail**'} | ${cell(c.detail)} | ${cell(JSON.stringify(c.answer))} |`);
  return `${lines.join('\n')}\n`;
}
