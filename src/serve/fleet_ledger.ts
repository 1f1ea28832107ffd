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
 *
 * Feedback (POST /v1/feedback) may reach any replica, since the balancer
 * does not send it to the one that served the request: each request's task
 * (and its outcome so far) is therefore kept in Redis for a day, and one
 * Lua script moves the task's success/failure counts from the old outcome
 * to the new, atomically, whichever replica runs it. While Redis is away a
 * replica takes feedback only for requests it served itself, counted
 * locally and sent (outcome included) once Redis is back.
 *
 * Redis layout under namespace N:
 *   N:ledger:tasks / N:ledger:models   sets of the names seen
 *   N:ledger:task:<task>               hash requests, successes, failures, cost
 *   N:ledger:model:<model>             hash requests, prompt_tokens, completion_tokens, cost
 *   N:ledger:replicas                  hash replica → requests it recorded
 *   N:ledger:request:<id>              hash task, success ("1"/"0", absent until feedback); expires after a day
 */

/** How long a request can still get feedback through any replica. */
export const FEEDBACK_TTL_S = 86_400;

/**
 * KEYS[1] the request's hash; ARGV[1] "1" or "0"; ARGV[2] the task hashes' key prefix.
 * Returns the request's task, or nil when Redis does not know the request.
 */
const FEEDBACK_SCRIPT = `
local task = redis.call('HGET', KEYS[1], 'task')
if not task then return nil end
local old = redis.call('HGET', KEYS[1], 'success')
redis.call('HSET', KEYS[1], 'success', ARGV[1])
local key = ARGV[2] .. task
if old == '1' then redis.call('HINCRBY', key, 'successes', -1) elseif old == '0' then redis.call('HINCRBY', key, 'failures', -1) end
redis.call('HINCRBY', key, ARGV[1] == '1' and 'successes' or 'failures', 1)
return task`;

type Deltas = Map<string, Map<string, number>>;

const add = (d: Deltas, key: string, field: string, n: number): void => {
  if (n === 0) return;
  let h = d.get(key);
  if (!h) d.set(key, (h = new Map()));
  h.set(field, (h.get(field) ?? 0) + n);
};

export class FleetLedger implements Ledger {
  private pending: Deltas = new Map();
  /** Requests whose hash (task, outcome) is still to be written to Redis. */
  private pendingRequests = new Set<string>();
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
    this.pendingRequests.add(r.id);
    const sent = this.flush();
    this.sends.set(r.id, sent);
    void sent.finally(() => this.sends.delete(r.id));
    return cost;
  }

  costOf = (a: Parameters<Ledger['costOf']>[0]): number => this.inner.costOf(a);

  /** The Ledger contract (the live judge): feedback about a request this replica served. */
  feedback(id: string, success: boolean): boolean {
    if (!this.inner.feedback(id, success)) return false;
    void this.shareFeedback(id, success);
    return true;
  }

  /**
   * POST /v1/feedback through the balancer: about a request any replica
   * served. Resolves to the request's task, or null when neither Redis nor
   * this replica knows the id.
   */
  async feedbackFromAnyReplica(id: string, success: boolean): Promise<string | null> {
    this.inner.feedback(id, success); // this replica's own report, when it served the request
    return this.shareFeedback(id, success);
  }

  /** The fleet's success/failure counts: by the script in Redis, or locally while it is away. */
  private shareFeedback(id: string, success: boolean): Promise<string | null> {
    const o = this.outcomes.get(id);
    const locally = (): string | null => {
      if (!o) return null;
      const key = `task:${o.task}`;
      if (o.success === true) add(this.pending, key, 'successes', -1);
      if (o.success === false) add(this.pending, key, 'failures', -1);
      add(this.pending, key, success ? 'successes' : 'failures', 1);
      o.success = success;
      this.pendingRequests.add(id); // its hash gets the new outcome, so a later script starts from it
      void this.flush();
      return o.task;
    };
    return this.shared
      .run(
        'fleet feedback',
        async (c) => {
          await this.settled(id); // this replica's record of it reaches Redis first
          const task = (await c.eval(FEEDBACK_SCRIPT, { keys: [this.shared.key('ledger', 'request', id)], arguments: [success ? '1' : '0', this.shared.key('ledger', 'task', '')] })) as string | null;
          if (task === null) return locally(); // recorded here while Redis was away, not sent yet
          if (o) o.success = success;
          return task;
        },
        locally,
      )
      .catch((e: Error) => {
        this.logger.error({ err: e.message }, 'fleet feedback failed');
        return locally();
      });
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
    if (this.pending.size === 0 && this.pendingRequests.size === 0) return Promise.resolve();
    const batch = this.pending;
    const requests = [...this.pendingRequests].flatMap((id) => {
      const o = this.outcomes.get(id);
      return o ? [{ id, task: o.task, success: o.success }] : [];
    });
    this.pending = new Map();
    this.pendingRequests = new Set();
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
          for (const r of requests) {
            const key = this.shared.key('ledger', 'request', r.id);
            multi.hSet(key, r.success === null ? { task: r.task } : { task: r.task, success: r.success ? '1' : '0' });
            multi.expire(key, FEEDBACK_TTL_S);
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
        if (!sent) {
          for (const [key, fields] of batch) for (const [f, n] of fields) add(this.pending, key, f, n);
          for (const r of requests) this.pendingRequests.add(r.id);
        }
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
