import type { Logger } from 'pino';
import type { Ledger, LedgerReport, RequestRecord, TaskReport } from './contracts.js';
import type { SharedState, RedisClient } from './shared_state.js';

/**
 * The cost ledger of a fleet: each replica keeps its own ledger (GET
 * /v1/ledger reports that replica) and adds what it records to totals in
 * Redis, which `attn serve --report --fleet URL` reads for the whole fleet.
 * Each request's increments are sent as soon as it is recorded, and the
 * server waits for Redis to take them (settled(), at most a moment) before
 * the response's last bytes go out: a replica killed right after answering
 * has already counted what it answered. If Redis is unreachable they are kept, retried
 * every `flushMs`, and sent when it answers again, so the fleet totals catch
 * up instead of losing what was served meanwhile.
 *
 * Redis layout under namespace N:
 *   N:ledger:tasks / N:ledger:models   sets of the names seen
 *   N:ledger:task:<task>               hash requests, successes, failures, cost
 *   N:ledger:model:<model>             hash requests, prompt_tokens, completion_tokens, cost
 *   N:ledger:replicas                  hash replica → requests it recorded
 */

type Deltas = Map<string, Map<string, number>>;

const add = (d: Deltas, key: string, field: string, n: number): void => {
  if (n === 0) return;
  let h = d.get(key);
  if (!h) d.set(key, (h = new Map()));
  h.set(field, (h.get(field) ?? 0) + n);
};

export class FleetLedger implements Ledger {
  private pending: Deltas = new Map();
  private readonly outcomes = new Map<string, { task: string; success: boolean | null }>();
  private readonly timer: NodeJS.Timeout;
  private readonly sending = new Set<Promise<void>>();
  /** The send carrying each recent request's increments, until it is done. */
  private readonly sends = new Map<string, Promise<void>>();

  constructor(
    private readonly inner: Ledger,
    private readonly shared: SharedState,
    private readonly replica: string,
    private readonly logger: Logger,
    flushMs = 250,
    private readonly maxRemembered = 100_000,
  ) {
    this.timer = setInterval(() => void this.flush(), flushMs);
    this.timer.unref();
  }

  record(r: RequestRecord): number {
    const cost = this.inner.record(r);
    for (const a of [...(r.escalated ?? []), r]) {
      const m = `model:${a.model}`;
      add(this.pending, m, 'requests', 1);
      add(this.pending, m, 'prompt_tokens', a.usage.prompt_tokens);
      add(this.pending, m, 'completion_tokens', a.cached ? 0 : a.usage.completion_tokens);
      add(this.pending, m, 'cost', this.inner.costOf(a));
    }
    add(this.pending, `task:${r.task}`, 'requests', 1);
    add(this.pending, `task:${r.task}`, 'cost', cost);
    add(this.pending, 'replicas', this.replica, 1);
    if (r.context_tokens_saved) add(this.pending, 'totals', 'context_tokens_saved', r.context_tokens_saved);
    this.outcomes.set(r.id, { task: r.task, success: null });
    if (this.outcomes.size > this.maxRemembered) this.outcomes.delete(this.outcomes.keys().next().value!);
    const sent = this.flush();
    this.sends.set(r.id, sent);
    void sent.finally(() => this.sends.delete(r.id));
    return cost;
  }

  costOf = (a: Parameters<Ledger['costOf']>[0]): number => this.inner.costOf(a);

  feedback(id: string, success: boolean): boolean {
    if (!this.inner.feedback(id, success)) return false;
    const o = this.outcomes.get(id);
    if (o) {
      const key = `task:${o.task}`;
      if (o.success === true) add(this.pending, key, 'successes', -1);
      if (o.success === false) add(this.pending, key, 'failures', -1);
      add(this.pending, key, success ? 'successes' : 'failures', 1);
      o.success = success;
      void this.flush();
    }
    return true;
  }

  report(): LedgerReport {
    return this.inner.report();
  }

  /** Resolves once the request's increments reached Redis (or were kept for later because it is away). */
  settled(id: string): Promise<void> {
    return this.sends.get(id) ?? Promise.resolve();
  }

  /**
   * Sends the increments gathered so far in one MULTI; keeps them for the
   * next try if Redis does not take them. Sends may overlap (increments
   * commute), so a request's increments never wait behind another's.
   */
  flush(): Promise<void> {
    if (this.pending.size === 0) return Promise.resolve();
    const batch = this.pending;
    this.pending = new Map();
    const sending = this.shared
      .run(
        'fleet ledger',
        async (c) => {
          const multi = c.multi();
          for (const [key, fields] of batch) {
            const full = this.shared.key('ledger', key);
            if (key.startsWith('task:')) multi.sAdd(this.shared.key('ledger', 'tasks'), key.slice(5));
            if (key.startsWith('model:')) multi.sAdd(this.shared.key('ledger', 'models'), key.slice(6));
            for (const [f, n] of fields) (f === 'cost' ? multi.hIncrByFloat(full, f, n) : multi.hIncrBy(full, f, n));
          }
          await multi.exec();
          return true;
        },
        () => false,
      )
      .catch((e: Error) => {
        this.logger.error({ err: e.message }, 'fleet ledger update failed');
        return false;
      })
      .then((sent) => {
        // Not taken: back into the pending increments, for the timer's next try.
        if (!sent) for (const [key, fields] of batch) for (const [f, n] of fields) add(this.pending, key, f, n);
      })
      .finally(() => this.sending.delete(sending));
    this.sending.add(sending);
    return sending;
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.sending]);
    await this.flush();
  }
}

const num = (h: Record<string, string>, f: string): number => Number(h[f] ?? 0);

/** The whole fleet's ledger, read from Redis: the report `attn serve --report --fleet` prints, plus requests per replica. */
export async function fleetReport(client: RedisClient, namespace: string): Promise<LedgerReport & { by_replica: Array<{ replica: string; requests: number }> }> {
  const k = (...p: string[]) => [namespace, 'ledger', ...p].join(':');
  const [tasks, models, replicas, totals] = await Promise.all([client.sMembers(k('tasks')), client.sMembers(k('models')), client.hGetAll(k('replicas')), client.hGetAll(k('totals'))]);
  const by_task: TaskReport[] = [];
  for (const task of tasks.sort()) {
    const h = await client.hGetAll(k('task', task));
    const requests = num(h, 'requests');
    const successes = num(h, 'successes');
    const cost = num(h, 'cost');
    by_task.push({ task, requests, successes, failures: num(h, 'failures'), cost, cost_per_request: requests > 0 ? cost / requests : 0, cost_per_successful_task: successes > 0 ? cost / successes : null });
  }
  const by_model = [];
  for (const model of models.sort()) {
    const h = await client.hGetAll(k('model', model));
    by_model.push({ model, requests: num(h, 'requests'), prompt_tokens: num(h, 'prompt_tokens'), completion_tokens: num(h, 'completion_tokens'), cost: num(h, 'cost') });
  }
  const requests = by_task.reduce((s, t) => s + t.requests, 0);
  const cost = by_task.reduce((s, t) => s + t.cost, 0);
  const successes = by_task.reduce((s, t) => s + t.successes, 0);
  return {
    requests,
    cost,
    cost_per_request: requests > 0 ? cost / requests : 0,
    cost_per_successful_task: successes > 0 ? cost / successes : null,
    by_task,
    by_model,
    context_tokens_saved: num(totals, 'context_tokens_saved'),
    by_replica: Object.entries(replicas).map(([replica, n]) => ({ replica, requests: Number(n) })).sort((a, b) => a.replica.localeCompare(b.replica)),
  };
}
