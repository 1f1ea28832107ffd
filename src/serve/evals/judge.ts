import { chat, type ChatTarget } from './openai_client.js';

/**
 * A judge: a model asked to grade an answer against a rubric, 1 to 10.
 * Models answer in many shapes ("Score: 7", "**Rating:** 8/10", `{"score":
 * 6}`, "I'd give it a 9 out of 10"), so the score is parsed leniently, most
 * explicit shape first; an answer with no score in it is reported as
 * unparsable rather than guessed.
 */

export const JUDGE_SYSTEM = 'You are a strict, fair grader. You grade one answer against a rubric and reply with your reasoning in one or two sentences, then a final line of the form "Score: N" where N is an integer from 1 (worst) to 10 (best).';

export function judgePrompt(rubric: string, question: string, answer: string, reference?: string): string {
  return [`Rubric: ${rubric}`, `Question or task:\n${question}`, ...(reference !== undefined ? [`Reference answer:\n${reference}`] : []), `Answer to grade:\n${answer}`, 'Grade the answer. End with "Score: N" (1-10).'].join('\n\n');
}

const SHAPES: RegExp[] = [
  /"score"\s*:\s*"?(\d+(?:\.\d+)?)/i,
  /\b(?:score|rating|grade)\**\s*(?:is|of|:|=)?\s*\**\s*(\d+(?:\.\d+)?)\s*(?:\/\s*10|out of 10)?/i,
  /\b(\d+(?:\.\d+)?)\s*(?:\/\s*10|out of 10)\b/i,
];

/** The score 1–10 in a judge's reply, or null. The last explicit score wins (models revise themselves). */
export function parseJudgeScore(reply: string): number | null {
  for (const shape of SHAPES) {
    const all = [...reply.matchAll(new RegExp(shape.source, 'gi'))];
    for (let i = all.length - 1; i >= 0; i--) {
      const n = Number(all[i]![1]);
      if (n >= 1 && n <= 10) return n;
    }
  }
  // A reply that is just a number.
  const bare = /^\s*(\d+(?:\.\d+)?)\s*\.?\s*$/.exec(reply);
  if (bare && Number(bare[1]) >= 1 && Number(bare[1]) <= 10) return Number(bare[1]);
  return null;
}

export interface Verdict {
  /** 1–10, or null when the reply had no score. */
  score: number | null;
  /** score / 10. */
  normalized: number | null;
  reply: string;
}

export async function judgeAnswer(judge: ChatTarget, rubric: string, question: string, answer: string, opts: { reference?: string; timeoutMs?: number } = {}): Promise<Verdict> {
  const r = await chat(judge, [{ role: 'system', content: JUDGE_SYSTEM }, { role: 'user', content: judgePrompt(rubric, question, answer, opts.reference) }], { maxTokens: 200, temperature: 0, ...(opts.timeoutMs ? { timeoutMs: opts.timeoutMs } : {}) });
  const score = parseJudgeScore(r.text);
  return { score, normalized: score === null ? null : score / 10, reply: r.text };
}
