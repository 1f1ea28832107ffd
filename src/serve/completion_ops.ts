import type { CompletionJob } from './completion_job.js';
import { encodePrompt } from './completion_job.js';
import type { ServeContext } from './context.js';
import type { PiiKind, StreamRedactor } from './guardrails/pii.js';
import type { RequestState } from './request_state.js';
import type { ServedModel } from './served_model.js';

/**
 * The guardrail and judging hooks of a completion request (completions.ts
 * calls these; each does nothing when its feature is off): the checks
 * before generation, redaction of the answer (or of the stream as it goes),
 * and what the live judge will see.
 */

/** The prompt as text: the chat's message contents, or the text prompts (token-id prompts have none). */
function promptTexts(job: CompletionJob): string[] {
  if (job.messages) return job.messages.map((m) => (typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? '')));
  return job.prompts.filter((p): p is string => typeof p === 'string');
}

/** Rate limits, budgets and content checks; throws the refusal. */
export async function beforeCompletion(ctx: ServeContext, st: RequestState, job: CompletionJob, served: ServedModel): Promise<void> {
  const ops = ctx.ops;
  if (!ops) return;
  const texts = promptTexts(job);
  ops.request(st).judged = { question: texts.join('\n'), answer: '' };
  if (!ops.guardrails) return;
  const start = performance.now();
  const promptTokens = job.prompts.reduce((n, _, i) => n + encodePrompt(served, job, i).length, 0);
  const tokens = promptTokens + (job.maxTokens ?? ctx.limits.defaultMaxTokens) * job.n * job.prompts.length;
  const r = ops.request(st);
  try {
    r.reserved = await ops.guardrails.beforeGeneration(r.client, texts, tokens, r.decisions, job.promptParam);
  } finally {
    ops.stage(st, 'guardrails', start, performance.now(), { 'attn.guardrails': JSON.stringify(r.decisions) });
  }
}

/** Redacts (and topic-checks) the answer's choices in place, before they are cached, sent and judged. */
export function afterCompletion(ctx: ServeContext, st: RequestState, choices: Array<{ text: string }>): void {
  const ops = ctx.ops;
  if (!ops) return;
  const r = ops.request(st);
  if (ops.guardrails) {
    const start = performance.now();
    const kinds: PiiKind[] = [];
    for (const c of choices) {
      const refusal = st.stream ? null : ops.guardrails.checkOutputTopic(c.text, r.decisions);
      if (refusal !== null) c.text = refusal;
      // A stream was redacted as it went (redactingSink); its text is redacted again here for the cache and the judge.
      c.text = ops.guardrails.redactOutput(c.text, st.stream ? [] : kinds);
    }
    if (!st.stream) ops.guardrails.countRedactions(kinds, r.decisions);
    ops.stage(st, 'guardrails_output', start);
  }
  if (r.judged) r.judged.answer = choices[0]?.text ?? '';
}

/** Where streamed text goes. */
export interface TextSink {
  text(choice: number, piece: string): void;
}

/**
 * A stream whose personal data is redacted before it is sent: each choice's
 * text passes through its own StreamRedactor (which holds back a short tail
 * until it knows no number or address is cut in two); finish() sends the
 * tails. Without output redaction, the sink itself.
 */
export function redactingSink<S extends TextSink>(ctx: ServeContext, st: RequestState, sink: S | null): { sink: TextSink | null; finish(): void } {
  const g = ctx.ops?.guardrails;
  if (!sink || !g || !g.streamRedactor()) return { sink, finish: () => {} };
  const redactors = new Map<number, StreamRedactor>();
  const of = (c: number): StreamRedactor => {
    let r = redactors.get(c);
    if (!r) redactors.set(c, (r = g.streamRedactor()!));
    return r;
  };
  return {
    sink: {
      text(choice, piece) {
        const out = of(choice).push(piece);
        if (out) sink.text(choice, out);
      },
    },
    finish() {
      const kinds: PiiKind[] = [];
      for (const [c, r] of redactors) {
        const out = r.flush();
        if (out) sink.text(c, out);
        kinds.push(...r.found.map((f) => f.kind));
      }
      g.countRedactions(kinds, ctx.ops!.request(st).decisions);
    },
  };
}
