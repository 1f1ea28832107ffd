import type { AttemptRecord, Ledger, LedgerReport, Price, RequestRecord, TaskReport, Usage } from './contracts.js';

/**
 * Token economics: what each request cost, and what a *successful* task
 * costs — the total spent on a task type (failed attempts included, since
 * they were paid for) over the number of its requests marked successful.
 * A request that escalated pays for every tier it tried, not only the one
 * that answered.
 */

export const FREE: Price = { input_per_million: 0, output_per_million: 0 };
/** Task types beyond `maxTasks` are counted under this name, so a client cannot grow the report without bound. */
export const OTHER_TASK = '(other)';

export interface LedgerOptions {
  /** For models not in the table. */
  defaultPrice?: Price;
  /** Requests remembered for feedback; the oldest is forgotten first (its cost stays in the totals). */
  maxRecords?: number;
  /** Distinct task types reported; later ones are pooled under OTHER_TASK. */
  maxTasks?: number;
}

/**
 * A cached response generated nothing, so only its prompt is charged (the
 * prompt was still tokenized and embedded to find the entry).
 */
export function requestCost(usage: Usage, price: Price, cached: boolean): number {
  const generated = cached ? 0 : usage.completion_tokens;
  return (usage.prompt_tokens * price.input_per_million + generated * price.output_per_million) / 1e6;
}

interface TaskTotals {
  requests: number;
  successes: number;
  failures: number;
  cost: number;
}

interface ModelTotals {
  requests: number;
  prompt_tokens: number;
  completion_tokens: number;
  cost: number;
}

/** What feedback needs to know about one past request. */
interface Remembered {
  task: string;
  /** null until feedback arrives; a later feedback replaces an earlier one. */
  success: boolean | null;
}

const perUnit = (cost: number, n: number): number | null => (n > 0 ? cost / n : null);

export function createLedger(prices: Record<string, Price>, opts: LedgerOptions = {}): Ledger {
  const defaultPrice = opts.defaultPrice ?? FREE;
  const maxRecords = opts.maxRecords ?? 100_000;
  const maxTasks = opts.maxTasks ?? 256;
  const recent = new Map<string, Remembered>();
  const tasks = new Map<string, TaskTotals>();
  const models = new Map<string, ModelTotals>();
  let contextTokensSaved = 0;

  const priceOf = (model: string): Price => (Object.hasOwn(prices, model) ? prices[model]! : defaultPrice);

  const costOf = (a: AttemptRecord): number => requestCost(a.usage, priceOf(a.model), a.cached);

  function taskTotals(task: string): TaskTotals {
    const name = tasks.has(task) || tasks.size < maxTasks ? task : OTHER_TASK;
    let t = tasks.get(name);
    if (!t) tasks.set(name, (t = { requests: 0, successes: 0, failures: 0, cost: 0 }));
    return t;
  }

  function modelTotals(model: string): ModelTotals {
    let m = models.get(model);
    if (!m) models.set(model, (m = { requests: 0, prompt_tokens: 0, completion_tokens: 0, cost: 0 }));
    return m;
  }

  function remember(id: string, r: Remembered): void {
    recent.delete(id); // re-inserting moves it to the newest end
    recent.set(id, r);
    while (recent.size > maxRecords) recent.delete(recent.keys().next().value!);
  }

  return {
    record(r: RequestRecord): number {
      // Every attempt was paid for: the escalated ones on cheaper tiers, then the answer.
      // Each is one request of its model; the task counts the request once, at its whole cost.
      let cost = 0;
      for (const a of [...(r.escalated ?? []), r]) {
        const c = costOf(a);
        const m = modelTotals(a.model);
        m.requests++;
        m.prompt_tokens += a.usage.prompt_tokens;
        m.completion_tokens += a.cached ? 0 : a.usage.completion_tokens;
        m.cost += c;
        cost += c;
      }
      contextTokensSaved += r.context_tokens_saved ?? 0;
      const t = taskTotals(r.task);
      t.requests++;
      t.cost += cost;
      remember(r.id, { task: tasks.has(r.task) ? r.task : OTHER_TASK, success: null });
      return cost;
    },

    costOf,

    feedback(id: string, success: boolean): boolean {
      const r = recent.get(id);
      if (!r) return false;
      const t = tasks.get(r.task)!;
      if (r.success === true) t.successes--;
      if (r.success === false) t.failures--;
      r.success = success;
      if (success) t.successes++;
      else t.failures++;
      return true;
    },

    report(): LedgerReport {
      const by_task: TaskReport[] = [...tasks.entries()]
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([task, t]) => ({
          task,
          ...t,
          cost_per_request: t.cost / t.requests,
          cost_per_successful_task: perUnit(t.cost, t.successes),
        }));
      const by_model = [...models.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([model, m]) => ({ model, ...m }));
      const requests = by_task.reduce((s, t) => s + t.requests, 0);
      const cost = by_task.reduce((s, t) => s + t.cost, 0);
      const successes = by_task.reduce((s, t) => s + t.successes, 0);
      return {
        requests,
        cost,
        cost_per_request: requests > 0 ? cost / requests : 0,
        cost_per_successful_task: perUnit(cost, successes),
        by_task,
        by_model,
        context_tokens_saved: contextTokensSaved,
      };
    },
  };
}

/** Small costs stay readable: six decimals, or significant digits below a micro-unit. */
function money(x: number | null): string {
  if (x === null) return '—';
  if (x === 0) return '0';
  return Math.abs(x) >= 1e-6 ? x.toFixed(6) : x.toPrecision(3);
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  // The first column is a name (left-aligned), the others are numbers (right-aligned).
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

/** The ledger as tables for `attn serve --report`. */
export function formatReport(report: LedgerReport): string {
  const tasks = table(
    ['task', 'requests', 'successes', 'failures', 'cost', 'cost/request', 'cost/success'],
    [
      ...report.by_task.map((t) => [t.task, String(t.requests), String(t.successes), String(t.failures), money(t.cost), money(t.cost_per_request), money(t.cost_per_successful_task)]),
      ['all', String(report.requests), String(report.by_task.reduce((s, t) => s + t.successes, 0)), String(report.by_task.reduce((s, t) => s + t.failures, 0)), money(report.cost), money(report.cost_per_request), money(report.cost_per_successful_task)],
    ],
  );
  const models = table(
    ['model', 'requests', 'prompt tokens', 'completion tokens', 'cost'],
    report.by_model.map((m) => [m.model, String(m.requests), String(m.prompt_tokens), String(m.completion_tokens), money(m.cost)]),
  );
  return `${tasks}\n\n${models}\n\ncost/success = all the cost of a task type's requests (failed ones included) / its requests marked successful.\n`;
}
