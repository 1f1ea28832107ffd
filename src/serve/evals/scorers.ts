import type { ChatTarget } from './openai_client.js';
import { judgeAnswer } from './judge.js';
import { validateJson } from './json_schema.js';
import type { EvalCase, Scorer } from './suite.js';

/**
 * Scoring one answer. Every scorer gives a pass/fail, a score in [0, 1]
 * and a short detail a person can read in the report: the text that did not
 * match, the schema errors, the number found, the judge's grade.
 */

export interface Scored {
  pass: boolean;
  score: number;
  detail: string;
}

/** The answer's JSON: the whole text, else the first fenced ```json block, else the outermost {...} or [...]. */
export function extractJson(text: string): { value: unknown } | null {
  const tries = [text.trim()];
  const fence = /```(?:json)?\s*([\s\S]*?)```/i.exec(text);
  if (fence) tries.push(fence[1]!.trim());
  const o = text.indexOf('{');
  const a = text.indexOf('[');
  const start = o < 0 ? a : a < 0 ? o : Math.min(o, a);
  if (start >= 0) tries.push(text.slice(start, Math.max(text.lastIndexOf('}'), text.lastIndexOf(']')) + 1));
  for (const t of tries) {
    try {
      return { value: JSON.parse(t) };
    } catch {
      /* the next shape */
    }
  }
  return null;
}

/** The last number written in the text: "-1,234.5", "3.2e-4", "42%" → 42. */
export function lastNumber(text: string): number | null {
  const all = [...text.matchAll(/-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-+]?\d+)?/g)];
  if (all.length === 0) return null;
  return Number(all[all.length - 1]![0].replace(/,/g, ''));
}

const clip = (s: string, n = 120): string => (s.length > n ? `${s.slice(0, n)}…` : s);

export async function scoreAnswer(c: EvalCase, answer: string, judge: (ChatTarget & { rubric?: string }) | null): Promise<Scored> {
  const s: Scorer = c.score;
  switch (s.type) {
    case 'exact': {
      const norm = (x: string) => {
        const t = s.trim ? x.trim() : x;
        return s.ignore_case ? t.toLowerCase() : t;
      };
      const pass = norm(answer) === norm(s.expected);
      return { pass, score: pass ? 1 : 0, detail: pass ? 'equal' : `expected ${JSON.stringify(clip(s.expected))}` };
    }
    case 'regex': {
      const pass = new RegExp(s.pattern, s.flags).test(answer);
      return { pass, score: pass ? 1 : 0, detail: pass ? `matches /${s.pattern}/` : `does not match /${s.pattern}/${s.flags}` };
    }
    case 'json_schema': {
      const j = extractJson(answer);
      if (!j) return { pass: false, score: 0, detail: 'no JSON in the answer' };
      const errors = validateJson(j.value, s.schema);
      return { pass: errors.length === 0, score: errors.length === 0 ? 1 : 0, detail: errors.length === 0 ? 'valid' : clip(errors.slice(0, 3).join('; '), 200) };
    }
    case 'numeric': {
      const n = lastNumber(answer);
      if (n === null) return { pass: false, score: 0, detail: 'no number in the answer' };
      const allowed = s.relative ? s.tolerance * Math.abs(s.expected) : s.tolerance;
      const pass = Math.abs(n - s.expected) <= allowed;
      return { pass, score: pass ? 1 : 0, detail: `${n} vs ${s.expected} ± ${allowed}` };
    }
    case 'judge': {
      if (!judge) throw new Error(`case ${c.id} is scored by a judge: give --judge-url and --judge-model`);
      const question = c.prompt ?? c.messages!.map((m) => `${m.role}: ${m.content}`).join('\n');
      const v = await judgeAnswer(judge, s.rubric ?? judge.rubric ?? 'The answer is correct, relevant and complete.', question, answer, s.reference !== undefined ? { reference: s.reference } : {});
      if (v.normalized === null) return { pass: false, score: 0, detail: `judge gave no score: ${JSON.stringify(clip(v.reply, 80))}` };
      return { pass: v.normalized >= s.pass_score, score: v.normalized, detail: `judge ${v.score}/10` };
    }
  }
}
