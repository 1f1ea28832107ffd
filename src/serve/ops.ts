import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ServeConfig } from './config.js';
import type { Ledger } from './contracts.js';
import { FleetLedger } from './fleet_ledger.js';
import { Guardrails, type Decisions } from './guardrails/guardrails.js';
import { LiveJudge } from './live_judge.js';
import { createOpsMetrics, type OpsMetrics } from './ops_metrics.js';
import type { RequestState } from './request_state.js';
import { SharedState } from './shared_state.js';
import { Tracing, type StageRecord } from './tracing.js';

/**
 * The operational pipeline stages of DESIGN.md's serving pipeline, built
 * from the serve config: guardrails, the fleet's shared state (Redis),
 * traces, and live judging. The server holds one Ops; each request gets a
 * small record of its own here (its client, its guardrail decisions and the
 * stages it went through), kept beside the RequestState rather than in it.
 */

export interface OpsRequest {
  /** Whose limits and budgets apply (guardrails.clientOf). */
  client: string;
  decisions: Decisions;
  stages: StageRecord[];
  /** Tokens reserved from the token limit, to settle when the request ends. */
  reserved: number;
  /** What the live judge is shown: the prompt and the answer. */
  judged?: { question: string; answer: string };
}

export class Ops {
  private readonly requests = new WeakMap<RequestState, OpsRequest>();
  private fleetLedger: FleetLedger | null = null;

  private constructor(
    readonly metrics: OpsMetrics,
    readonly shared: SharedState | null,
    readonly guardrails: Guardrails | null,
    readonly tracing: Tracing,
    readonly judge: LiveJudge | null,
    readonly replica: string,
    private readonly logger: Logger,
  ) {}

  /** Connects to the fleet's Redis when one is configured (a bad URL fails here, at start-up). */
  static async create(config: ServeConfig, registry: Registry, logger: Logger, taskLabel: (t: string) => string, ledger: () => Ledger, replica = `${hostname()}:${process.pid}`): Promise<Ops> {
    const metrics = createOpsMetrics(registry);
    let shared: SharedState | null = null;
    if (config.fleet) {
      shared = await SharedState.connect({ url: config.fleet.redis_url, namespace: config.fleet.namespace, logger, onChange: (up) => metrics.sharedStateUp.set(up ? 1 : 0) });
    }
    const guardrails = config.guardrails ? new Guardrails(config.guardrails, shared, metrics) : null;
    const tracing = await Tracing.create(config.tracing, logger, metrics, taskLabel);
    const judge = config.judge ? new LiveJudge(config.judge, ledger, metrics, taskLabel, logger) : null;
    return new Ops(metrics, shared, guardrails, tracing, judge, config.fleet?.replica ?? replica, logger);
  }

  /** With a fleet, the ledger also adds to the fleet's totals in Redis. */
  wrapLedger(ledger: Ledger): Ledger {
    if (!this.shared) return ledger;
    this.fleetLedger = new FleetLedger(ledger, this.shared, this.replica, this.logger);
    return this.fleetLedger;
  }

  /**
   * Waits (at most `ms`) until the fleet ledger has the request: completions
   * call this between accounting and sending the answer's last bytes.
   */
  async recorded(id: string, ms = 500): Promise<void> {
    if (!this.fleetLedger) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.fleetLedger.settled(id), new Promise<void>((ok) => (timer = setTimeout(ok, ms)))]);
    clearTimeout(timer);
  }

  /**
   * Feedback about a request that any replica of the fleet served (the
   * balancer may send it anywhere): the request's task, or null when the
   * fleet does not know the id. Undefined without a fleet.
   */
  fleetFeedback(id: string, success: boolean): Promise<string | null> | undefined {
    return this.fleetLedger?.feedbackFromAnyReplica(id, success);
  }

  request(st: RequestState, client = 'anonymous'): OpsRequest {
    let r = this.requests.get(st);
    if (!r) this.requests.set(st, (r = { client, decisions: {}, stages: [], reserved: 0 }));
    return r;
  }

  /** A stage of the request, timed with performance.now(). */
  stage(st: RequestState, stage: string, start: number, end = performance.now(), attributes?: StageRecord['attributes']): void {
    this.request(st).stages.push({ stage, start, end, ...(attributes ? { attributes } : {}) });
  }

  /** Extra fields of the request's log line. */
  logFields(st: RequestState): Record<string, unknown> {
    const r = this.requests.get(st);
    const fields: Record<string, unknown> = this.shared ? { replica: this.replica, shared_state: this.shared.shared ? 'redis' : 'local' } : {};
    if (r && Object.keys(r.decisions).length > 0) fields.guardrails = r.decisions;
    return fields;
  }

  /** The request's spans and stage metrics; the token reservation settled; maybe a judgement. */
  async finish(st: RequestState, status: number, name: string): Promise<void> {
    const r = this.requests.get(st);
    const used = st.usage?.total_tokens ?? st.spent?.usage.total_tokens ?? 0;
    if (r && this.guardrails) await this.guardrails.settle(r.client, r.reserved, used).catch((e: Error) => st.log.warn({ err: e.message }, 'settling the token limit failed'));
    this.tracing.finish({
      trace: st.trace,
      name,
      task: st.task,
      start: st.started,
      end: performance.now(),
      status,
      attributes: {
        'attn.request_id': st.id,
        ...(st.model ? { 'attn.model': st.model } : {}),
        ...(st.usage ? { 'attn.prompt_tokens': st.usage.prompt_tokens, 'attn.completion_tokens': st.usage.completion_tokens } : {}),
        ...(st.cost !== undefined ? { 'attn.cost': st.cost } : {}),
        ...(st.cached !== undefined ? { 'attn.cached': st.cached } : {}),
        ...(st.stream !== undefined ? { 'attn.stream': st.stream } : {}),
      },
      stages: r?.stages ?? [],
    });
    if (status === 200 && r?.judged && this.judge) this.judge.consider(st.id, st.task, r.judged.question, r.judged.answer);
  }

  async close(): Promise<void> {
    await this.judge?.idle();
    await this.fleetLedger?.close();
    await this.tracing.close();
    await this.shared?.close();
  }
}
