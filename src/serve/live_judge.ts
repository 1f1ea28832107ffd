import type { Logger } from 'pino';
import type { Ledger } from './contracts.js';
import { judgeAnswer } from './evals/judge.js';
import type { JudgeConfig } from './ops_config.js';
import type { OpsMetrics } from './ops_metrics.js';

/**
 * Live traffic judged as it is served: a configured fraction of answered
 * completions is sent, after the response, to a judge model with the
 * rubric; the verdict is the request's success or failure in the ledger (as
 * POST /v1/feedback would mark it), which is what cost per *successful* task,
 * by task type, is computed from. Judging never delays a response, and at
 * most max_concurrent run at once: beyond that a request is skipped (and
 * counted), so a slow judge cannot pile up work.
 */
export class LiveJudge {
  private running = 0;
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly config: JudgeConfig,
    private readonly ledger: () => Ledger,
    private readonly metrics: OpsMetrics,
    private readonly taskLabel: (t: string) => string,
    private readonly logger: Logger,
    private readonly random: () => number = Math.random,
  ) {}

  /** Maybe judge this answer (in the background). */
  consider(id: string, task: string, question: string, answer: string): void {
    if (this.config.fraction <= 0 || this.random() >= this.config.fraction) return;
    const label = this.taskLabel(task);
    if (this.running >= this.config.max_concurrent) {
      this.metrics.judged.inc({ task: label, verdict: 'skipped' });
      return;
    }
    this.running++;
    const p = judgeAnswer({ url: this.config.url, model: this.config.model, apiKey: this.config.api_key }, this.config.rubric, question, answer, { timeoutMs: this.config.timeout_s * 1000 })
      .then((v) => {
        if (v.normalized === null) {
          this.metrics.judged.inc({ task: label, verdict: 'error' });
          this.logger.info({ request_id: id, judge_reply: v.reply.slice(0, 200) }, 'judge reply had no score');
          return;
        }
        const pass = v.normalized >= this.config.pass_score;
        this.ledger().feedback(id, pass);
        this.metrics.judged.inc({ task: label, verdict: pass ? 'pass' : 'fail' });
        this.logger.info({ request_id: id, task, judge_score: v.score, success: pass }, 'judged');
      })
      .catch((e: Error) => {
        this.metrics.judged.inc({ task: label, verdict: 'error' });
        this.logger.warn({ request_id: id, err: e.message }, 'judge call failed');
      })
      .finally(() => {
        this.running--;
        this.pending.delete(p);
      });
    this.pending.add(p);
  }

  /** Resolves when the judgements under way have finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }
}
